"""Speech-like utterances at 16 kHz with a label for every frame: which vowel is being
spoken (or none), for self-supervised pre-training and linear probes.

The audio is the source-filter speech of :mod:`labutils.data.denoising` (a new speaker,
F0 and vocal-tract length per utterance, one random vowel per syllable), plus a little
white noise. Frame j covers samples [j hop, j hop + window) like the wav2vec 2.0 feature
encoder; its label is the vowel at the frame's centre, 0 ("pause") between syllables.
Generated on the fly from a seed: nothing is downloaded or cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from labutils.audio import VOWEL_FORMANTS
from labutils.data.denoising import labelled_speech_like, noise

SAMPLE_RATE = 16000
HOP = 320       # samples a frame: 20 ms
WINDOW = 400    # samples a frame sees: 25 ms
LABELS = ("pause", *sorted(VOWEL_FORMANTS))


@dataclass
class Utterances:
    """``waves`` (n, N) float32, each with zero mean and unit variance; ``frame_labels``
    (n, T) long, an index into :data:`LABELS` per frame."""

    waves: torch.Tensor
    frame_labels: torch.Tensor

    def __len__(self) -> int:
        return self.waves.shape[0]


def make_utterances(n: int, seconds: float = 2.0, snr_db: float = 30.0, seed: int = 0,
                    sr: int = SAMPLE_RATE, hop: int = HOP, window: int = WINDOW) -> Utterances:
    """``n`` utterances of ``seconds`` each with white noise at ``snr_db``; the same seed
    gives the same data. T = (N - window) // hop + 1 frames an utterance."""
    n_samples = int(round(seconds * sr))
    if n < 1 or n_samples < window:
        raise ValueError(f"need n >= 1 utterances of at least {window} samples, got n={n}, "
                         f"seconds={seconds} ({n_samples} samples)")
    rng = np.random.default_rng(seed)
    frames = (n_samples - window) // hop + 1
    centres = np.arange(frames) * hop + window // 2
    waves = np.empty((n, n_samples), dtype=np.float32)
    labels = np.zeros((n, frames), dtype=np.int64)
    for i in range(n):
        y, syllables = labelled_speech_like(n_samples, sr, rng)
        y = y + 10 ** (-snr_db / 20) * np.sqrt(np.mean(y**2)) * noise("white", n_samples, sr, rng)
        waves[i] = (y - y.mean()) / y.std()
        for start, length, vowel in syllables:
            inside = (centres >= start) & (centres < start + length)
            labels[i, inside] = LABELS.index(vowel)
    return Utterances(torch.from_numpy(waves), torch.from_numpy(labels))
