"""Playable audio in notebooks: one signal or several side by side."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np


def _as_signal(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    x = np.squeeze(x)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"an audio signal must be one channel of samples, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("an audio signal contains NaN or inf; check the model's output")
    return x


class Players:
    """Audio players with labels, shown in one row. In a notebook they render as HTML
    players; anywhere else (a terminal, a test) the object prints a one-line summary."""

    def __init__(self, signals: Mapping[str, np.ndarray], sr: int, common_scale: bool):
        self.signals = dict(signals)
        self.sr = int(sr)
        self.common_scale = common_scale

    def __repr__(self) -> str:
        parts = [f"{k} ({v.size / self.sr:.2f} s)" for k, v in self.signals.items()]
        return f"<audio at {self.sr} Hz: {', '.join(parts)}>"

    def _repr_html_(self) -> str:
        from IPython.display import Audio

        peak = max(float(np.max(np.abs(v))) for v in self.signals.values()) or 1.0
        cells = []
        for label, x in self.signals.items():
            scale = peak if self.common_scale else (float(np.max(np.abs(x))) or 1.0)
            player = Audio(x / scale, rate=self.sr, normalize=False)._repr_html_()
            cells.append(
                f"<td style='padding:4px 12px;text-align:center'><b>{html.escape(label)}</b>"
                f"<br>{player}</td>"
            )
        return f"<table><tr>{''.join(cells)}</tr></table>"


def play(signals, sr: int, labels: Sequence[str] | None = None, common_scale: bool = True):
    """Players for one signal of shape (N,) or several (a dict label -> signal, or a list).

    With ``common_scale`` every signal is divided by the same peak, so that a noisy and a
    denoised version keep their loudness difference; otherwise each is normalised alone.
    Use as the last expression of a cell, or ``display(play(...))``.
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if isinstance(signals, Mapping):
        items = {str(k): _as_signal(v) for k, v in signals.items()}
    elif isinstance(signals, (list, tuple)):
        labels = labels or [f"signal {i + 1}" for i in range(len(signals))]
        if len(labels) != len(signals):
            raise ValueError(f"{len(signals)} signals but {len(labels)} labels")
        items = {str(k): _as_signal(v) for k, v in zip(labels, signals, strict=True)}
    else:
        items = {(labels or ["signal"])[0]: _as_signal(signals)}
    if not items:
        raise ValueError("play() needs at least one signal")
    return Players(items, sr, common_scale)
