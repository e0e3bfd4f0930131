"""Noisy/clean audio pairs for denoising, in the format of the course's ``data_lab_2B.pt``:
a ``torch.save``-d container of ``(x, y)`` pairs indexed as ``data[q] -> (x, y)``, ``x``
the noisy and ``y`` the clean signal, each a float32 tensor of shape [1, 32000] (1 s at
32 kHz). The lab's file is not documented further: :func:`load` reads a list or tuple of
pairs and a ``TensorDataset``.

:func:`generate` writes such a file from a source-filter model of speech plus noise of a
chosen kind; :func:`load` reads it (or the course's own file) safely and checks it.
"""

from __future__ import annotations

import os
import pathlib
from typing import NamedTuple

import numpy as np
import torch
from scipy import signal as sps

from labutils.audio import VOWEL_FORMANTS, formant_filter, glottal_source
from labutils.data.cache import DamagedFileError, cache_dir, cached, safe_torch_load

SAMPLE_RATE = 32000
N_SAMPLES = 32000
LAB_FILE = "data_lab_2B.pt"
NOISE_KINDS = ("white", "pink", "hum", "band", "clicks", "mixed")


class Pairs(NamedTuple):
    """A denoising data set: ``noisy`` and ``clean`` of shape (Q, 1, N), float32."""

    noisy: torch.Tensor
    clean: torch.Tensor


# ---------------------------------------------------------------- clean, speech-like signals


def _syllables(n: int, rng: np.random.Generator, sr: int) -> list[tuple[int, int, str]]:
    """(start, length, vowel) of syllable-like segments with pauses between them, in
    samples at ``sr``."""
    out, t = [], int(rng.uniform(0.02, 0.15) * sr)
    vowels = sorted(VOWEL_FORMANTS)
    while t < n - 0.08 * sr:
        length = min(int(rng.uniform(0.12, 0.3) * sr), n - t)
        out.append((t, length, vowels[rng.integers(len(vowels))]))
        t += length + int(rng.uniform(0.03, 0.15) * sr)
    return out


def speech_like(n: int = N_SAMPLES, sr: int = SAMPLE_RATE, rng=None) -> np.ndarray:
    """A speech-like utterance of ``n`` samples: a glottal pulse train at a speaker's F0
    (85-255 Hz, falling slowly, with jitter) through the formant resonators of a random
    vowel per syllable (scaled for vocal-tract length), under smooth syllable envelopes,
    some syllables opening with a short fricative hiss. Peak 1. Returns float64 (n,)."""
    return labelled_speech_like(n, sr, rng)[0]


def labelled_speech_like(n: int = N_SAMPLES, sr: int = SAMPLE_RATE, rng=None):
    """:func:`speech_like` with its syllables: returns the signal (n,) and a list of
    (start, length, vowel) in samples, the vowel a key of ``audio.VOWEL_FORMANTS``."""
    rng = np.random.default_rng(rng)
    t = np.arange(n) / sr
    f0 = rng.uniform(85, 255) * (1.1 - 0.2 * t / t[-1]) * (1 + 0.03 * np.sin(2 * np.pi * 3 * t))
    source = glottal_source(f0, n, sr, jitter=rng.uniform(0.005, 0.02), rng=rng)
    tract = rng.uniform(0.95, 1.2)  # shorter vocal tracts have higher formants
    y = np.zeros(n)
    syllables = _syllables(n, rng, sr)
    for start, length, name in syllables:
        seg = slice(start, start + length)
        voiced = formant_filter(source[seg], [f * tract for f in VOWEL_FORMANTS[name]], sr)
        y[seg] += voiced * np.hanning(length) * rng.uniform(0.4, 1.0) / np.abs(voiced).max()
        if rng.random() < 0.4:  # a fricative onset: high-passed noise, 20-60 ms
            m = min(int(rng.uniform(0.02, 0.06) * sr), length)
            hiss = sps.sosfilt(sps.butter(4, rng.uniform(2500, 4500), "highpass", fs=sr,
                                          output="sos"), rng.standard_normal(m))
            y[start:start + m] += 0.15 * hiss * np.hanning(m) / np.abs(hiss).max()
    return y / np.abs(y).max(), syllables


# ---------------------------------------------------------------- noise


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    spec[1:] /= np.sqrt(f[1:] / f[1])  # power falls as 1/f
    spec[0] = 0
    return np.fft.irfft(spec, n)


def _hum(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    mains = rng.choice([50.0, 60.0]) * rng.uniform(0.995, 1.005)
    t = np.arange(n) / sr
    harmonics = np.arange(1, 16)
    amps = rng.uniform(0.3, 1.0, harmonics.size) / harmonics ** 0.7
    phases = rng.uniform(0, 2 * np.pi, harmonics.size)
    hum = (amps[:, None] * np.sin(2 * np.pi * mains * harmonics[:, None] * t + phases[:, None]))
    return hum.sum(0) + 0.02 * rng.standard_normal(n)  # a whisper of hiss on the line


def _band(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    low = rng.uniform(200, 6000)
    high = min(low * rng.uniform(1.5, 3.0), 0.45 * sr)
    sos = sps.butter(6, [low, high], "bandpass", fs=sr, output="sos")
    return sps.sosfilt(sos, rng.standard_normal(n + 2000))[2000:]  # drop the transient


def _clicks(n: int, rng: np.random.Generator, rate: float = 60.0, sr: int = SAMPLE_RATE):
    """Impulsive noise: about ``rate`` clicks a second at random times, each a spike of
    random sign and size decaying over a few samples (a crackle on an old record)."""
    v = np.zeros(n)
    where = rng.random(n) < rate / sr
    v[where] = rng.choice([-1.0, 1.0], where.sum()) * rng.uniform(0.3, 1.0, where.sum())
    return sps.lfilter([1.0], [1.0, -0.6], v)  # each spike decays as 0.6^k


def noise(kind: str, n: int = N_SAMPLES, sr: int = SAMPLE_RATE, rng=None) -> np.ndarray:
    """Noise of unit power: ``"white"``, ``"pink"`` (1/f), ``"hum"`` (50 or 60 Hz mains
    with 15 harmonics), ``"band"`` (Gaussian noise in a random band), ``"clicks"``
    (impulsive: sparse spikes) or ``"mixed"`` (one of the first four at random). Returns
    float64 (n,)."""
    rng = np.random.default_rng(rng)
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind {kind!r} is not one of {NOISE_KINDS}")
    if kind == "mixed":
        kind = NOISE_KINDS[rng.integers(4)]
    v = {"white": lambda: rng.standard_normal(n), "pink": lambda: _pink(n, rng),
         "hum": lambda: _hum(n, sr, rng), "band": lambda: _band(n, sr, rng),
         "clicks": lambda: _clicks(n, rng, sr=sr)}[kind]()
    return v / np.sqrt(np.mean(v ** 2))


def make_pair(noise_kind: str, snr_range: tuple[float, float], rng) -> tuple[torch.Tensor, ...]:
    """One (noisy, clean) pair, each float32 of shape [1, 32000]: clean speech at a peak
    level drawn from [0.1, 0.3] (an RMS near -28 dBFS, a usual recording level) plus
    noise at an SNR drawn uniformly from ``snr_range``."""
    clean = speech_like(rng=rng) * rng.uniform(0.1, 0.3)
    snr = rng.uniform(*snr_range)
    scale = np.sqrt(np.mean(clean ** 2) / 10 ** (snr / 10))
    noisy = clean + scale * noise(noise_kind, rng=rng)
    as_tensor = lambda v: torch.from_numpy(v.astype(np.float32)).reshape(1, -1)  # noqa: E731
    return as_tensor(noisy), as_tensor(clean)


def generate(n_pairs: int, noise_kind: str = "white", snr_range=(0.0, 10.0), seed: int = 0,
             data_dir=None) -> pathlib.Path:
    """The path of a file of ``n_pairs`` generated (noisy, clean) pairs in the lab's format,
    written into the cache once (atomically) and reused after: the same arguments always
    give the same file."""
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1, got {n_pairs}")
    if noise_kind not in NOISE_KINDS:
        raise ValueError(f"noise_kind {noise_kind!r} is not one of {NOISE_KINDS}")
    low, high = (float(v) for v in snr_range)
    if low > high:
        raise ValueError(f"snr_range must be (low, high) in dB with low <= high, got {snr_range}")

    def write(path: pathlib.Path) -> None:
        rng = np.random.default_rng(seed)
        torch.save([make_pair(noise_kind, (low, high), rng) for _ in range(n_pairs)], path)

    name = f"denoising_{noise_kind}_snr{low:g}to{high:g}_{n_pairs}pairs_seed{seed}.pt"
    return cached(name, write, data_dir, validate=load)


# ---------------------------------------------------------------- loading


def lab_file(data_dir=None) -> pathlib.Path:
    """Where the course's own ``data_lab_2B.pt`` is expected: in the data cache."""
    path = cache_dir(data_dir) / LAB_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{LAB_FILE} is not at {path}. Download it from the course site and put it "
            "there (or point DATA_DIR at its folder), or set DATASET = 'generated'."
        )
    return path


def _read(path: pathlib.Path):
    """``safe_torch_load`` (``weights_only=True``, never code) with ``TensorDataset``
    allow-listed: unpickling one only sets its ``tensors`` attribute."""
    from torch.utils.data import TensorDataset

    with torch.serialization.safe_globals([TensorDataset]):
        try:
            return safe_torch_load(path)
        except DamagedFileError as err:
            raise DamagedFileError(f"not a safe file of tensors: {err} Accepted here: "
                                   f"{_ACCEPTED}.") from None


_ACCEPTED = ("a list or tuple of (noisy, clean) pairs, or a TensorDataset(noisy, clean), "
             "as torch.save writes them")


def _pairs(path, data) -> list:
    """The (noisy, clean) pairs of whatever container the file holds, or a clear error."""
    from torch.utils.data import TensorDataset

    if isinstance(data, TensorDataset):
        tensors = getattr(data, "tensors", ())
        if not (isinstance(tensors, (list, tuple)) and len(tensors) == 2
                and all(isinstance(v, torch.Tensor) and v.dim() >= 1 for v in tensors)
                and len(tensors[0]) == len(tensors[1]) > 0):
            shapes = [tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                      for v in tensors] if isinstance(tensors, (list, tuple)) else tensors
            raise ValueError(f"{path} holds a TensorDataset of {shapes}; expected two "
                             "tensors of Q pairs, TensorDataset(noisy (Q, 1, N), clean "
                             "(Q, 1, N))")
        return [data[q] for q in range(len(data))]
    if isinstance(data, (list, tuple)) and len(data) > 0:
        return list(data)
    got = f"an empty {type(data).__name__}" if isinstance(data, (list, tuple)) else (
        f"a {type(data).__name__}")
    raise ValueError(f"{path} must hold {_ACCEPTED}; got {got}")


def load(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
         n_samples: int = N_SAMPLES) -> Pairs:
    """Read the (noisy, clean) pairs of a file written with ``torch.save``, without
    executing code (``weights_only=True``): a list of pairs (the generator's format), a
    tuple of pairs, or a ``torch.utils.data.TensorDataset(noisy, clean)`` with tensors of
    shape (Q, 1, n_samples), so that ``data[q]`` is ``(x, y)`` in each case, as the lab's
    code reads it. Checks each pair: real float tensors of shape [1, n_samples] (1 s at
    ``sample_rate``), finite. Returns :class:`Pairs` with ``noisy`` and ``clean`` of
    shape (Q, 1, n_samples), float32."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    data = _pairs(path, _read(path))
    for q, pair in enumerate(data):
        _check_pair(path, q, pair, sample_rate, n_samples)
    noisy = torch.stack([x for x, _ in data]).float()
    clean = torch.stack([y for _, y in data]).float()
    return Pairs(noisy, clean)


def _check_pair(path, q: int, pair, sample_rate: int, n_samples: int) -> None:
    where = f"{path}, pair {q}"
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2
            and all(isinstance(v, torch.Tensor) for v in pair)):
        raise ValueError(f"{where}: expected a pair (x, y) of tensors, got {type(pair).__name__}")
    for name, v in zip(("x (noisy)", "y (clean)"), pair, strict=True):
        if not v.is_floating_point():
            raise ValueError(f"{where}: {name} has dtype {v.dtype}; expected real floating "
                             "point samples (float32), e.g. int16 PCM / 32768")
        if tuple(v.shape) != (1, n_samples):
            seconds = n_samples / sample_rate
            raise ValueError(
                f"{where}: {name} has shape {tuple(v.shape)}; expected [1, {n_samples}] "
                f"({seconds:g} s at {sample_rate} Hz). A different length usually means a "
                f"different sample rate: resample to {sample_rate} Hz, or pass sample_rate "
                "and n_samples to match the file."
            )
        if not torch.isfinite(v).all():
            raise ValueError(f"{where}: {name} contains NaN or inf")


def split(data: Pairs, n_val: int, n_test: int, seed: int = 0) -> dict[str, Pairs]:
    """Split pairs into ``"test"``, ``"val"`` and ``"train"`` (in that order along one seeded
    permutation ``torch.randperm(Q, generator=manual_seed(seed))``: the first ``n_test``
    indices, the next ``n_val``, the rest), as notebook 02 does, so that notebooks that use
    the same data and seed test on the same clips. Returns a dict of :class:`Pairs`."""
    q = len(data.noisy)
    if n_val < 0 or n_test < 1 or n_val + n_test >= q:
        raise ValueError(f"cannot take {n_test} test and {n_val} validation pairs out of {q} "
                         "and keep some for training; lower n_val and n_test or use more pairs")
    order = torch.randperm(q, generator=torch.Generator().manual_seed(seed))
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val],
             "train": order[n_test + n_val:]}
    return {name: Pairs(data.noisy[i], data.clean[i]) for name, i in parts.items()}
