"""The one training loop that every notebook shares."""

from __future__ import annotations

import copy
import itertools
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

Batch = object
Step = Callable[[torch.nn.Module, Batch], tuple]


def to_device(batch, device: torch.device):
    """Move a tensor, or tensors nested in tuples, lists and dicts, to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def progress_enabled() -> bool:
    """Progress bars are on, except under CI or with ``LABUTILS_PROGRESS=0``."""
    if os.environ.get("LABUTILS_PROGRESS", "").strip() == "0":
        return False
    return os.environ.get("CI", "").strip().lower() not in {"1", "true", "yes"}


@dataclass
class History:
    """Per-epoch record of a run: ``history["val_loss"]`` is a list with one value an epoch.

    Keys are ``train_loss``, ``val_loss`` (with a validation loader), ``train_<metric>``,
    ``val_<metric>``, ``lr`` and ``seconds``. ``best_epoch`` (0-based) is the epoch whose
    weights the model holds at the end when ``keep_best`` is on.
    """

    values: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None

    def append(self, key: str, value: float) -> None:
        self.values.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        return self.values[key]

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def __iter__(self):
        return iter(self.values)

    def keys(self):
        return self.values.keys()

    @property
    def epochs(self) -> int:
        return len(self.values.get("train_loss", []))

    def last(self) -> dict[str, float]:
        """The last epoch's values, one per key."""
        return {k: v[-1] for k, v in self.values.items() if v}


def default_step(loss_fn: Callable) -> Step:
    """A step for batches ``(x1, ..., xk, y)``: ``out = model(x1, ..., xk)``, loss on ``y``."""

    def step(model, batch):
        *inputs, target = batch
        out = model(*inputs)
        return loss_fn(out, target), out, target

    return step


def _batch_size(batch) -> int:
    first = batch
    while isinstance(first, (list, tuple)):
        first = first[0]
    if isinstance(first, Mapping):
        first = next(iter(first.values()))
    return int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() else 1


def output_step(model, batch):
    """A step with no loss, for :func:`evaluate` with metrics only: ``model(x1, ..., xk)``."""
    *inputs, target = batch
    return None, model(*inputs), target


class _Totals:
    """Running sums for one pass: a metric that returns a float is averaged over samples
    (weighted by batch size); one that returns ``(numerator, denominator)`` is a corpus
    ratio, the sum of numerators over the sum of denominators."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, name: str, value, n: int) -> None:
        if isinstance(value, tuple):
            if len(value) != 2:
                raise ValueError(f"metric {name!r} returned {len(value)} values; a corpus "
                                 "metric returns (numerator, denominator)")
            num, den = (float(v) for v in value)
        else:
            num, den = float(value) * n, n
        self.sums[name] = self.sums.get(name, 0.0) + num
        self.weights[name] = self.weights.get(name, 0.0) + den

    def mean(self, name: str) -> float:
        return self.sums[name] / self.weights[name] if self.weights[name] else math.nan

    def result(self) -> dict[str, float]:
        return {name: self.mean(name) for name in self.sums}


class Progress:
    """One progress bar for a whole run, reused by every pass over the data (tqdm.auto: a
    widget in a notebook, text in a terminal). :meth:`close` replaces it with one line of
    text, so that a saved notebook keeps no widget whose state it does not store (which
    shows as "Error displaying widget: model not found" when it is reopened)."""

    def __init__(self):
        self.bar, self.handle = None, None
        if not progress_enabled():
            return
        from tqdm import notebook

        widget = isinstance(tqdm, type) and issubclass(tqdm, notebook.tqdm)
        self.bar = tqdm(total=0, leave=False, **({"display": False} if widget else {}))
        if widget:  # shown under a display id, so that close() can replace it with text
            from IPython.display import display

            self.handle = display(self.bar.container, display_id=True)

    def start(self, desc: str, loader: Iterable) -> None:
        """Begin a pass over ``loader`` (its length is the bar's total, if it has one)."""
        if self.bar is not None:
            self.bar.reset(total=len(loader) if hasattr(loader, "__len__") else None)
            self.bar.set_description(desc, refresh=False)

    def step(self, loss: float | None = None) -> None:
        if self.bar is not None:
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            self.bar.update()

    def close(self, text: str) -> None:
        """Remove the bar and leave ``text`` (one line) in its place."""
        if self.bar is None:
            return
        self.bar.close()
        if self.handle is None:
            print(text)
            return
        self.handle.update({"text/plain": text}, raw=True)
        self.bar.container.close()  # the widget is gone from the page and the kernel


def _summary(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in values.items() if k not in {"lr", "seconds"})


def run_epoch(
    model: torch.nn.Module,
    loader: Iterable,
    step: Step,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None = None,
    metrics: Mapping[str, Callable] | None = None,
    clip_grad_norm: float | None = None,
    scheduler=None,
    desc: str = "",
    after_step: Callable[[torch.nn.Module, float], None] | None = None,
    progress: Progress | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; trains when ``optimizer`` is given, else evaluates.

    Returns the loss and each metric ``fn(out, y)`` over the pass: the batch-size-weighted
    mean of a metric that returns a number, the ratio of sums of one that returns
    ``(numerator, denominator)``. ``scheduler`` (if any) steps after every optimizer step;
    ``on_batch_end(step, model, loss)`` runs after it, with ``step`` counted from
    ``steps_done + 1``. ``progress`` is the bar to show the pass on (default: one of its
    own, replaced by a line of results at the end).
    """
    model.train(optimizer is not None)
    own = progress is None
    progress = Progress() if own else progress
    progress.start(desc, loader)
    try:
        result = _pass(model, loader, step, device, optimizer, metrics, clip_grad_norm,
                       scheduler, desc, after_step, progress)
    except BaseException:
        if own:
            progress.close(f"{desc or 'pass'}: stopped")
        raise
    if own:
        progress.close(f"{desc or 'pass'}: {_summary(result)}")
    return result


def _pass(model, loader, step, device, optimizer, metrics, clip_grad_norm, scheduler, desc,
          after_step, progress) -> dict[str, float]:
    """The loop of :func:`run_epoch`."""
    training = optimizer is not None
    totals = _Totals()
    count = 0
    with torch.set_grad_enabled(training):
        for batch in loader:
            batch = to_device(batch, device)
            loss, out, target = step(model, batch)
            if loss is not None and not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the loss became {loss.item()} ({desc}); lower the learning rate "
                    "or set clip_grad_norm"
                )
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                if after_step is not None:
                    after_step(model, loss.item())
                    model.train(True)  # the hook may have evaluated the model
            n = _batch_size(batch)
            count += n
            with torch.no_grad():
                if loss is not None:
                    totals.add("loss", loss.item(), n)
                for name, fn in (metrics or {}).items():
                    totals.add(name, fn(out, target), n)
            progress.step(totals.mean("loss") if loss is not None else None)
    if count == 0:
        raise ValueError(f"the data loader for {desc or 'this pass'} yielded no batch")
    return totals.result()


def evaluate(
    model: torch.nn.Module,
    loader: Iterable,
    *,
    loss_fn: Callable | None = None,
    step: Step | None = None,
    metrics: Mapping[str, Callable] | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Evaluate ``model`` on ``loader`` exactly as :func:`fit` validates, without gradients.

    Batches and ``step`` are as in :func:`fit`; with neither ``loss_fn`` nor ``step`` only
    the metrics are computed. Returns ``{"loss": ..., name: ...}``: per-sample means, and
    corpus ratios for metrics that return ``(numerator, denominator)`` (e.g. the character
    error rate: total edits over total reference length).
    """
    if loss_fn is not None and step is not None:
        raise ValueError("evaluate() takes loss_fn or step, not both")
    if step is None:
        step = default_step(loss_fn) if loss_fn is not None else output_step
    if loss_fn is None and step is output_step and not metrics:
        raise ValueError("evaluate() has nothing to compute: give loss_fn, step or metrics")
    device = _resolve_device(model, device)
    model.to(device)
    return run_epoch(model, loader, step, device, None, metrics, desc="evaluate")


def _resolve_device(model: torch.nn.Module, device) -> torch.device:
    if device is not None:
        from labutils.device import get_device

        return get_device(device) if isinstance(device, str) else torch.device(device)
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def fit(
    model: torch.nn.Module,
    train_loader: Iterable,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable | None = None,
    step: Step | None = None,
    val_loader: Iterable | None = None,
    metrics: Mapping[str, Callable] | None = None,
    device: torch.device | str | None = None,
    clip_grad_norm: float | None = None,
    scheduler=None,
    scheduler_per: str = "epoch",
    keep_best: bool = True,
    monitor: str | None = None,
    mode: str = "min",
    on_epoch_end: Callable[[int, History], None] | None = None,
    on_batch_end: Callable[[int, torch.nn.Module, float], None] | None = None,
    live_plot: bool = False,
) -> History:
    """Train ``model`` for ``epochs`` epochs and return its :class:`History`.

    Batches are ``(x1, ..., xk, y)`` used as ``loss_fn(model(x1, ..., xk), y)``; for
    anything else pass ``step(model, batch) -> (loss, out, target)``. Each metric is
    ``fn(out, target) -> float``, averaged over samples, for training and validation.
    ``monitor`` (default ``val_loss``, or ``train_loss`` without validation) with ``mode``
    picks the best epoch, whose weights are restored at the end when ``keep_best``.
    ``scheduler`` steps once an epoch (``scheduler_per="epoch"``) or once a batch
    (``"step"``). ``on_epoch_end(epoch, history)`` runs after every epoch, before the
    best epoch is chosen, so it may append a metric for ``monitor``;
    ``on_batch_end(step, model, loss)`` runs after every optimizer step (``step`` counts
    from 1 over the whole run), e.g. to log the loss or snapshot outputs;
    ``live_plot=True`` redraws the loss curves in the notebook as training goes.
    """
    if (loss_fn is None) == (step is None):
        raise ValueError("fit() needs exactly one of loss_fn or step")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if scheduler_per not in {"epoch", "step"}:
        raise ValueError("scheduler_per must be 'epoch' or 'step'")
    if mode not in {"min", "max"}:
        raise ValueError("mode must be 'min' or 'max'")
    step = step or default_step(loss_fn)
    if next(iter(model.parameters()), None) is None:
        raise ValueError("fit() needs a model with parameters to train; this one has none")
    device = _resolve_device(model, device)
    model.to(device)
    monitor = monitor or ("val_loss" if val_loader is not None else "train_loss")
    history = History()
    plotter = None
    if live_plot:
        from labutils.plotting import LivePlot

        plotter = LivePlot()
    per_step = scheduler if scheduler_per == "step" else None
    steps = itertools.count(1)
    after_step = None if on_batch_end is None else (
        lambda m, loss: on_batch_end(next(steps), m, loss))
    progress = Progress()
    best_value, best_state = math.inf if mode == "min" else -math.inf, None
    try:
        for epoch in range(epochs):
            start = time.perf_counter()
            train = run_epoch(
                model, train_loader, step, device, optimizer, metrics, clip_grad_norm,
                per_step, desc=f"epoch {epoch + 1}/{epochs} train", after_step=after_step,
                progress=progress,
            )
            for k, v in train.items():
                history.append(f"train_{k}", v)
            if val_loader is not None:
                val = run_epoch(model, val_loader, step, device, None, metrics,
                                desc=f"epoch {epoch + 1}/{epochs} validate", progress=progress)
                for k, v in val.items():
                    history.append(f"val_{k}", v)
            history.append("lr", optimizer.param_groups[0]["lr"])
            if scheduler is not None and scheduler_per == "epoch":
                scheduler.step()
            history.append("seconds", time.perf_counter() - start)
            if on_epoch_end is not None:  # may add entries, e.g. a metric to monitor
                on_epoch_end(epoch, history)
            if monitor not in history:
                raise KeyError(f"monitor={monitor!r} is not recorded; choose from "
                               f"{list(history)}")
            value = history[monitor][-1]
            if (value < best_value) if mode == "min" else (value > best_value):
                best_value, history.best_epoch = value, epoch
                if keep_best:
                    best_state = copy.deepcopy(model.state_dict())
            if plotter is not None:
                plotter.update(history)
    except BaseException as err:
        progress.close(f"fit: stopped in epoch {history.epochs + 1} of {epochs} "
                       f"({type(err).__name__})")
        raise
    finally:
        if plotter is not None:
            plotter.close()
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
    best = history.best_epoch
    line = f"fit: {epochs} epochs in {sum(history['seconds']):.1f} s"
    if best is not None:
        kept = " (its weights kept)" if keep_best else ""
        values = {k: v[best] for k, v in history.values.items() if best < len(v)}
        line += f"; best {monitor} in epoch {best + 1}{kept}: {_summary(values)}"
    progress.close(line)
    return history
