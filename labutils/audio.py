"""Audio helpers: quality measures (SNR, SI-SDR), spectrograms and a source-filter
synthesizer that makes speech-like sounds without any download."""

from __future__ import annotations

import numpy as np
import torch
from scipy import signal as sps

# Formants (Hz) of a few vowels of an adult male voice (Peterson & Barney, 1952).
VOWEL_FORMANTS = {
    "a": (730, 1090, 2440),
    "e": (530, 1840, 2480),
    "i": (270, 2290, 3010),
    "o": (570, 840, 2410),
    "u": (300, 870, 2240),
}


def _pair(reference, estimate) -> tuple[torch.Tensor, torch.Tensor]:
    ref = torch.as_tensor(reference, dtype=torch.float64)
    est = torch.as_tensor(estimate, dtype=torch.float64)
    if ref.shape != est.shape:
        raise ValueError(f"reference {tuple(ref.shape)} and estimate {tuple(est.shape)} differ")
    if ref.shape[-1] == 0:
        raise ValueError("the signals are empty")
    return ref, est


def snr_db(reference, estimate, eps: float = 1e-12) -> torch.Tensor:
    """SNR = 10 log10(||s||^2 / ||s - s_hat||^2) in dB over the last axis; shape (...,)."""
    ref, est = _pair(reference, estimate)
    signal = ref.pow(2).sum(-1)
    noise = (ref - est).pow(2).sum(-1)
    return 10 * torch.log10((signal + eps) / (noise + eps))


def si_sdr_db(reference, estimate, eps: float = 1e-12) -> torch.Tensor:
    """Scale-invariant SDR (Le Roux et al., 2019) in dB over the last axis; shape (...,).

    Both signals are made zero-mean; the reference is scaled by the projection
    alpha = <s_hat, s> / ||s||^2 and SI-SDR = 10 log10(||alpha s||^2 / ||s_hat - alpha s||^2).
    """
    ref, est = _pair(reference, estimate)
    ref = ref - ref.mean(-1, keepdim=True)
    est = est - est.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    return 10 * torch.log10(
        (target.pow(2).sum(-1) + eps) / ((est - target).pow(2).sum(-1) + eps)
    )


def spectrogram_db(x, n_fft: int = 512, hop: int = 128, top_db: float = 80.0) -> np.ndarray:
    """Magnitude STFT in dB (librosa, Hann window) of a signal of shape (N,); returns
    (n_fft // 2 + 1, frames), with 0 dB at the loudest bin and a floor ``top_db`` below."""
    import librosa

    x = np.asarray(x, dtype=np.float32).reshape(-1)
    mag = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, window="hann"))
    return librosa.amplitude_to_db(mag, ref=np.max, top_db=top_db)


def glottal_source(f0, n: int, sr: int, jitter: float = 0.0, rng=None) -> np.ndarray:
    """A glottal excitation of ``n`` samples: an impulse train at the (scalar or per-sample)
    fundamental ``f0`` in Hz, each period perturbed by ``jitter`` (relative standard
    deviation), shaped by a two-pole glottal low-pass. Returns shape (n,)."""
    rng = np.random.default_rng(rng)
    f0 = np.broadcast_to(np.asarray(f0, dtype=float), (n,))
    if np.any(f0 <= 0) or np.any(f0 >= sr / 2):
        raise ValueError("f0 must lie strictly between 0 and the Nyquist frequency")
    pulses = np.zeros(n)
    t = 0.0
    while t < n:
        pulses[int(t)] = 1.0
        t += sr / f0[int(t)] * (1.0 + jitter * rng.standard_normal())
    return sps.lfilter([1.0], [1.0, -1.9, 0.9025], pulses)  # double pole at 0.95


def formant_filter(x, formants, sr: int, bandwidths=None) -> np.ndarray:
    """Pass ``x`` (N,) through a cascade of two-pole resonators, one per formant (Hz),
    then a first difference for radiation at the lips. Bandwidths default to 80 + 0.05 F."""
    y = np.asarray(x, dtype=float)
    bandwidths = bandwidths or [80.0 + 0.05 * f for f in formants]
    for f, bw in zip(formants, bandwidths, strict=True):
        if not 0 < f < sr / 2:
            raise ValueError(f"formant {f} Hz is outside (0, {sr / 2}) Hz")
        r = np.exp(-np.pi * bw / sr)
        a = [1.0, -2 * r * np.cos(2 * np.pi * f / sr), r * r]
        y = sps.lfilter([sum(a)], a, y)  # unit gain at DC
    return np.diff(y, prepend=0.0)


def vowel(name: str = "a", f0: float = 120.0, duration: float = 1.0, sr: int = 16000,
          jitter: float = 0.01, seed: int = 0) -> np.ndarray:
    """A sustained vowel (``'a', 'e', 'i', 'o', 'u'``) with a gentle pitch glide and an
    attack/decay envelope, peak-normalised to 0.9. Returns float32 of shape (sr*duration,)."""
    if name not in VOWEL_FORMANTS:
        raise ValueError(f"vowel {name!r} is not one of {sorted(VOWEL_FORMANTS)}")
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    f0_track = f0 * (1 + 0.06 * np.sin(2 * np.pi * t / max(duration, 1e-3)))
    y = formant_filter(glottal_source(f0_track, n, sr, jitter, seed), VOWEL_FORMANTS[name], sr)
    y *= np.minimum(1.0, t / 0.05) * np.minimum(1.0, (duration - t) / 0.1)
    return (0.9 * y / np.max(np.abs(y))).astype(np.float32)


def chirp(f_start: float, f_end: float, duration: float = 1.0, sr: int = 16000,
          method: str = "logarithmic") -> np.ndarray:
    """A sine sweep from ``f_start`` to ``f_end`` Hz at amplitude 0.5; float32 (N,)."""
    t = np.arange(int(round(duration * sr))) / sr
    return (0.5 * sps.chirp(t, f_start, duration, f_end, method=method)).astype(np.float32)
