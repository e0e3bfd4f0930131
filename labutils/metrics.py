"""Metrics that several notebooks share. Each returns a Python float, or a
``(numerator, denominator)`` pair where the metric is a ratio over a corpus, so that
:func:`labutils.evaluate` can sum both over batches (a ratio of sums, not a mean of ratios).
"""

from __future__ import annotations

import torch


def accuracy(out: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of correct predictions. ``out``: logits or scores (N, C), or predicted
    labels (N,); ``target``: labels (N,). Usable as a ``fit``/``evaluate`` metric."""
    if out.dim() == target.dim() + 1:
        out = out.argmax(dim=-1)
    if out.shape != target.shape:
        raise ValueError(f"accuracy: predictions of shape {tuple(out.shape)} do not match "
                         f"targets of shape {tuple(target.shape)}; pass logits (N, C) or "
                         "labels (N,)")
    if target.numel() == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return (out == target).float().mean().item()
