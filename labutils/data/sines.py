"""Synthetic sequences for CTC: segments of sines, one frequency per class.

Each sequence is a run of segments of random class and random length; class k (1-based,
0 is the CTC blank) is a sine of frequency ``freqs[k - 1]`` in cycles per sample with a
random phase, plus white noise. Consecutive segments have different classes, so the
class sequence (the CTC target) can be read from the signal. Generated on the fly from
a seed: nothing is downloaded or cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

FREQS = (0.1, 0.2, 0.3)


@dataclass
class SineSegments:
    """A generated set: ``x`` (n, 1, length) float32, ``targets`` (n, S) long padded with
    0, ``target_lengths`` (n,), ``frame_labels`` (n, length) the class of every sample."""

    x: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    frame_labels: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    def dataset(self) -> TensorDataset:
        """``(x, targets, target_lengths)`` items, the batches ``labutils.ctc.ctc_step``
        takes."""
        return TensorDataset(self.x, self.targets, self.target_lengths)

    def target(self, i: int) -> list[int]:
        """The class sequence of item ``i``."""
        return self.targets[i, : self.target_lengths[i]].tolist()

    def segments(self, i: int) -> list[tuple[int, int, int]]:
        """The segments of item ``i`` as ``(start, end, class)``, samples start..end-1."""
        labels = self.frame_labels[i]
        edges = [0, *(torch.nonzero(labels.diff()).flatten() + 1).tolist(), len(labels)]
        return [(a, b, int(labels[a])) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _segment_lengths(rng: np.random.Generator, length: int, low: int, high: int) -> list[int]:
    """Random lengths in [low, high] adding up to ``length``; a short remainder is merged
    into the last segment."""
    sizes: list[int] = []
    total = 0
    while total < length:
        sizes.append(min(int(rng.integers(low, high + 1)), length - total))
        total += sizes[-1]
    if sizes[-1] < low and len(sizes) > 1:
        last = sizes.pop()
        sizes[-1] += last
    return sizes


def _classes(rng: np.random.Generator, count: int, n_classes: int) -> list[int]:
    """``count`` classes in 1..n_classes, each different from the one before."""
    classes = [int(rng.integers(1, n_classes + 1))]
    for _ in range(count - 1):
        step = int(rng.integers(1, n_classes))  # any class but the previous one
        classes.append((classes[-1] - 1 + step) % n_classes + 1)
    return classes


def make_sine_segments(n: int, length: int = 200, freqs=FREQS, segment_length=(15, 40),
                       noise: float = 0.1, seed: int = 0) -> SineSegments:
    """Generate ``n`` sequences of ``length`` samples (see the module docstring).

    ``segment_length`` = (shortest, longest) segment in samples; ``noise`` the standard
    deviation of the added white noise; the same ``seed`` gives the same data.
    """
    low, high = segment_length
    if len(freqs) < 2:
        raise ValueError("make_sine_segments needs at least two classes (freqs)")
    if not 1 <= low <= high or low > length:
        raise ValueError(f"segment_length={segment_length} must satisfy 1 <= shortest <= "
                         f"longest and shortest <= length={length}")
    if not all(0 < f < 0.5 for f in freqs):
        raise ValueError(f"frequencies {freqs} must lie in (0, 0.5) cycles per sample")
    rng = np.random.default_rng(seed)
    x = np.empty((n, length), dtype=np.float32)
    frames = np.empty((n, length), dtype=np.int64)
    sequences = []
    for i in range(n):
        sizes = _segment_lengths(rng, length, low, high)
        classes = _classes(rng, len(sizes), len(freqs))
        frames[i] = np.repeat(classes, sizes)
        phase = np.repeat(rng.uniform(0, 2 * np.pi, len(sizes)), sizes)
        freq = np.asarray(freqs)[frames[i] - 1]
        x[i] = np.sin(2 * np.pi * freq * np.arange(length) + phase)
        sequences.append(classes)
    x += noise * rng.standard_normal(x.shape).astype(np.float32)
    lengths = torch.tensor([len(s) for s in sequences])
    targets = torch.zeros(n, int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(sequences):
        targets[i, : len(s)] = torch.tensor(s)
    return SineSegments(torch.from_numpy(x).unsqueeze(1), targets, lengths,
                        torch.from_numpy(frames))
