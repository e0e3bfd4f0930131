"""The one training loop that every notebook shares."""

from __future__ import annotations

import copy
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
) -> dict[str, float]:
    """One pass over ``loader``; trains when ``optimizer`` is given, else evaluates.

    Returns the batch-size-weighted means of the loss and of each metric ``fn(out, y)``.
    ``scheduler`` (if any) steps after every optimizer step.
    """
    training = optimizer is not None
    model.train(training)
    sums: dict[str, float] = {}
    count = 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress_enabled())
    with torch.set_grad_enabled(training):
        for batch in bar:
            batch = to_device(batch, device)
            loss, out, target = step(model, batch)
            if not torch.isfinite(loss):
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
            n = _batch_size(batch)
            count += n
            sums["loss"] = sums.get("loss", 0.0) + loss.item() * n
            with torch.no_grad():
                for name, fn in (metrics or {}).items():
                    sums[name] = sums.get(name, 0.0) + float(fn(out, target)) * n
            bar.set_postfix(loss=f"{sums['loss'] / count:.4g}", refresh=False)
    if count == 0:
        raise ValueError(f"the data loader for {desc or 'this pass'} yielded no batch")
    return {k: v / count for k, v in sums.items()}


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
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    monitor = monitor or ("val_loss" if val_loader is not None else "train_loss")
    history = History()
    best_value, best_state = math.inf if mode == "min" else -math.inf, None
    plotter = None
    if live_plot:
        from labutils.plotting import LivePlot

        plotter = LivePlot()
    per_step = scheduler if scheduler_per == "step" else None
    epoch_bar = tqdm(range(epochs), desc="epochs", disable=not progress_enabled())
    for epoch in epoch_bar:
        start = time.perf_counter()
        train = run_epoch(
            model, train_loader, step, device, optimizer, metrics, clip_grad_norm,
            per_step, desc=f"train {epoch + 1}",
        )
        for k, v in train.items():
            history.append(f"train_{k}", v)
        if val_loader is not None:
            val = run_epoch(model, val_loader, step, device, None, metrics, desc="validate")
            for k, v in val.items():
                history.append(f"val_{k}", v)
        history.append("lr", optimizer.param_groups[0]["lr"])
        if scheduler is not None and scheduler_per == "epoch":
            scheduler.step()
        history.append("seconds", time.perf_counter() - start)
        if on_epoch_end is not None:  # may add entries, e.g. a metric to monitor
            on_epoch_end(epoch, history)
        if monitor not in history:
            raise KeyError(f"monitor={monitor!r} is not recorded; choose from {list(history)}")
        value = history[monitor][-1]
        if (value < best_value) if mode == "min" else (value > best_value):
            best_value, history.best_epoch = value, epoch
            if keep_best:
                best_state = copy.deepcopy(model.state_dict())
        epoch_bar.set_postfix({k: f"{v:.4g}" for k, v in history.last().items() if "loss" in k})
        if plotter is not None:
            plotter.update(history)
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
    if plotter is not None:
        plotter.close()
    return history
