"""The adding problem (Hochreiter & Schmidhuber 1997), a long-range memory task for
recurrent networks: generated on the fly, seeded, no file on disk."""

from __future__ import annotations

import torch


def adding_problem(n: int, length: int, seed: int = 0,
                   lag: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences of the adding problem.

    ``x`` (n, length, 2): channel 0 holds random numbers in [0, 1), channel 1 a marker with
    two ones, one in each half of the first ``length - lag`` steps (the last ``lag`` steps
    are never marked). ``y`` (n, 1) is the sum of the two marked numbers. Predicting the
    mean, 1, scores MSE 1/6 (the variance of the sum); predicting 0.5 plus the second marked
    number scores 1/12 (the variance of the first)."""
    if n < 1 or length < 2 or not 0 <= lag <= length - 2:
        raise ValueError(
            f"adding_problem needs n >= 1, length >= 2 and 0 <= lag <= length - 2, got n={n}, "
            f"length={length}, lag={lag}"
        )
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, length, generator=g)
    rows, span = torch.arange(n), length - lag
    first = torch.randint(0, span // 2, (n,), generator=g)
    second = torch.randint(span // 2, span, (n,), generator=g)
    marks = torch.zeros(n, length)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    return torch.stack([values, marks], dim=-1), (values * marks).sum(1, keepdim=True)
