"""Timing a from-scratch function against its library counterpart, in one process.

Built on ``torch.utils.benchmark.Timer``, which synchronises CUDA around each timed call
and runs at a stated thread count; the two functions are timed in interleaved repeats,
and what is reported is the median of the per-repeat ratios ours / reference.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.utils import benchmark


@dataclass
class Case:
    """One benchmark: ``ours()`` (the project's code) against ``reference()`` (the library's
    counterpart), both without arguments.

    ``target`` is the ratio ours/reference that the project aims at (None: report only).
    With ``check``, both results are compared first with ``torch.testing.assert_close``
    at ``rtol``/``atol`` (long float32 sums in another order may need a wider rtol).
    """

    name: str
    ours: Callable[[], object]
    reference: Callable[[], object]
    target: float | None = None
    check: bool = True
    note: str = ""
    rtol: float = 1e-4
    atol: float = 1e-5


def forward_backward(fn: Callable, *inputs, wrt: Sequence[torch.Tensor] = ()) -> Callable:
    """A closure running one forward and backward pass of ``fn(*inputs)``, for timing and
    checking: the floating-point tensors among ``inputs`` become fresh leaves, the output
    (a scalar loss as it is, anything else through ``out.square().mean()``) is
    backpropagated, and the closure returns the output and the gradients of those inputs
    and of ``wrt`` (e.g. a module's parameters), flattened into one 1-D tensor."""

    def run() -> torch.Tensor:
        leaves = [x.detach().requires_grad_() if torch.is_tensor(x) and x.is_floating_point()
                  else x for x in inputs]
        out = fn(*leaves)
        loss = out if out.dim() == 0 else out.square().mean()
        tensors = [x for x in leaves if torch.is_tensor(x) and x.requires_grad] + list(wrt)
        grads = torch.autograd.grad(loss, tensors) if tensors else ()
        return torch.cat([out.detach().reshape(-1), *(g.reshape(-1) for g in grads)])

    return run


def _timer(fn: Callable[[], object], threads: int, clock: Callable[[], float] | None):
    extra = {} if clock is None else {"timer": clock}
    return benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads, **extra)


def time_side_by_side(fns: Mapping[str, Callable[[], object]], warmup: int = 1,
                      repeats: int = 21, threads: int | None = None,
                      timer: Callable[[], float] | None = None) -> dict[str, list[float]]:
    """Time several functions without arguments in one process at ``threads`` torch
    threads (default: the current setting): ``warmup`` untimed calls of each, then
    ``repeats`` rounds that time each once (the Timer runs it twice more, untimed, just
    before), the order rotating from round to round so that none always runs first.
    Returns each name's times in seconds. ``timer`` replaces the clock (for tests)."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    if not fns:
        raise ValueError("time_side_by_side needs at least one function to time")
    threads = threads or torch.get_num_threads()
    names = list(fns)
    timers = {name: _timer(fns[name], threads, timer) for name in names}
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timers[name].timeit(number=1).median)
    return times


def compare(case: Case, warmup: int = 1, repeats: int = 21, threads: int | None = None,
            timer: Callable[[], float] | None = None) -> dict:
    """Time ``case`` with :func:`time_side_by_side` after a check that both agree.
    Returns medians in ms and the median of the per-round ratios ours / reference."""
    threads = threads or torch.get_num_threads()
    if case.check:
        torch.testing.assert_close(case.ours(), case.reference(), rtol=case.rtol, atol=case.atol,
                                   msg=lambda m: f"{case.name}: results differ: {m}")
    times = time_side_by_side({"ours": case.ours, "reference": case.reference}, warmup,
                              repeats, threads, timer)
    ours, ref = times["ours"], times["reference"]
    ratios = [a / b for a, b in zip(ours, ref, strict=True) if b > 0]
    ratio = statistics.median(ratios) if ratios else float("nan")
    return {
        "name": case.name,
        "threads": threads,
        "repeats": repeats,
        "ours_ms": 1e3 * statistics.median(ours),
        "reference_ms": 1e3 * statistics.median(ref),
        "ratio": ratio,
        "target": case.target,
        "meets_target": None if case.target is None else bool(ratio <= case.target),
        "note": case.note,
    }


def format_table(rows: Sequence[dict]) -> str:
    """A Markdown table of :func:`compare` results."""
    lines = [
        "| benchmark | threads | ours (ms) | reference (ms) | ratio | target | |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        target = "" if r["target"] is None else f"<= {r['target']:.2f}"
        mark = {None: "", True: "ok", False: "MISSED"}[r["meets_target"]]
        lines.append(
            f"| {r['name']} | {r['threads']} | {r['ours_ms']:.2f} | {r['reference_ms']:.2f} | "
            f"{r['ratio']:.2f} | {target} | {mark} |"
        )
    return "\n".join(lines)

