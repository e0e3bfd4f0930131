"""Timing a from-scratch function against its library counterpart, in one process."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch


@dataclass
class Case:
    """One benchmark: ``ours()`` against ``reference()``, both without arguments.

    ``target`` is the ratio ours/reference that the issue asks for (None: report only).
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


def _timed(fn: Callable[[], object], timer: Callable[[], float]) -> float:
    start = timer()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return timer() - start


def time_side_by_side(fns: Mapping[str, Callable[[], object]], warmup: int = 2,
                      repeats: int = 11, timer: Callable[[], float] = time.perf_counter
                      ) -> dict[str, list[float]]:
    """Time several functions without arguments in one process: ``warmup`` untimed calls
    of each, then ``repeats`` rounds that call each once, the order rotating from round to
    round so that none always runs first. Returns each name's times in seconds."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    if not fns:
        raise ValueError("time_side_by_side needs at least one function to time")
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_timed(fns[name], timer))
    return times


def compare(case: Case, warmup: int = 2, repeats: int = 11,
            timer: Callable[[], float] = time.perf_counter) -> dict:
    """Time ``case`` with ``warmup`` untimed calls of each, then ``repeats`` interleaved
    pairs (the order alternating), and return medians in ms and the median of the
    per-pair ratios ours/reference."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    if case.check:
        torch.testing.assert_close(case.ours(), case.reference(), rtol=case.rtol, atol=case.atol,
                                   msg=lambda m: f"{case.name}: results differ: {m}")
    times = time_side_by_side({"ours": case.ours, "reference": case.reference}, warmup,
                              repeats, timer)
    ours, ref = times["ours"], times["reference"]
    ratios = [a / b for a, b in zip(ours, ref, strict=True) if b > 0]
    ratio = statistics.median(ratios) if ratios else float("nan")
    return {
        "name": case.name,
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
        "| benchmark | ours (ms) | reference (ms) | ratio | target | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        target = "" if r["target"] is None else f"<= {r['target']:.2f}"
        mark = {None: "", True: "ok", False: "MISSED"}[r["meets_target"]]
        lines.append(
            f"| {r['name']} | {r['ours_ms']:.2f} | {r['reference_ms']:.2f} | "
            f"{r['ratio']:.2f} | {target} | {mark} |"
        )
    return "\n".join(lines)
