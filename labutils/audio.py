"""Audio helpers: quality measures (SNR, SI-SDR), spectrograms and a source-filter
synthesizer that makes speech-like sounds without any download."""

from __future__ import annotations

from dataclasses import dataclass

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


def glottal_source(f0, n: int, sr: int, jitter: float = 0.0, rng=None,
                   shimmer: float = 0.0) -> np.ndarray:
    """A glottal excitation of ``n`` samples: an impulse train at the (scalar or per-sample)
    fundamental ``f0`` in Hz, each period perturbed by ``jitter`` and each pulse's amplitude
    by ``shimmer`` (relative standard deviations), shaped by a two-pole glottal low-pass.
    Returns shape (n,)."""
    rng = np.random.default_rng(rng)
    f0 = np.broadcast_to(np.asarray(f0, dtype=float), (n,))
    if np.any(f0 <= 0) or np.any(f0 >= sr / 2):
        raise ValueError("f0 must lie strictly between 0 and the Nyquist frequency")
    pulses = np.zeros(n)
    t = 0.0
    while t < n:
        pulses[int(t)] = 1.0 + shimmer * rng.standard_normal() if shimmer else 1.0
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


def add_noise(x, snr: float, rng=None) -> np.ndarray:
    """``x`` (N,) plus white Gaussian noise at a signal-to-noise ratio of ``snr`` dB
    (powers over the whole signal). Returns float64 (N,)."""
    x = np.asarray(x, dtype=float)
    power = np.mean(x ** 2)
    if power == 0:
        raise ValueError("the signal is silent; an SNR is undefined")
    noise = np.random.default_rng(rng).standard_normal(x.shape)
    return x + noise * np.sqrt(power / 10 ** (snr / 10))


def log_mel(x, sr: int, n_mels: int = 64, n_fft: int = 512, hop: int = 256,
            fmax: float | None = None) -> np.ndarray:
    """Log-mel spectrogram in dB (librosa, power, ``10 log10(max(S, 1e-10))``) of a signal
    (N,); returns float32 (n_mels, 1 + N // hop)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=np.asarray(x, dtype=np.float32), sr=sr, n_fft=n_fft,
                                         hop_length=hop, n_mels=n_mels, fmax=fmax)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).astype(np.float32)


# ---------------------------------------------------------------- speakers reading scripts


@dataclass(frozen=True)
class Voice:
    """A speaker of the source-filter model.

    ``f0`` mean fundamental (Hz) and ``f0_range`` its relative swing over a phrase;
    ``tract`` scales every formant (a shorter vocal tract gives > 1) and ``formant_shift``
    moves F1, F2, F3 each by a relative amount (the speaker's own vowel quality);
    ``jitter`` and ``shimmer`` are the relative period and amplitude perturbations of the
    glottal pulses; ``breath`` the level of aspiration noise beside the pulses; ``rate``
    syllables per second; ``pause`` the mean pause between phrases in seconds.
    """

    f0: float
    f0_range: float
    tract: float
    formant_shift: tuple[float, float, float]
    jitter: float
    shimmer: float
    breath: float
    rate: float
    pause: float


def script_syllables(n: int, seed: int) -> list[tuple[str, float, float]]:
    """A "script": ``n`` syllables (vowel, relative length 0.6-1.6, pitch accent 0 or 1),
    the same for every speaker who reads it (seeded by ``seed``)."""
    rng = np.random.default_rng(seed)
    vowels = sorted(VOWEL_FORMANTS)
    return [(vowels[rng.integers(len(vowels))], float(rng.uniform(0.6, 1.6)),
             float(rng.random() < 0.25)) for _ in range(n)]


def read_script(voice: Voice, script: list[tuple[str, float, float]], duration: float,
                sr: int = 16000, rng=None, phrase: int = 6) -> np.ndarray:
    """``voice`` reading ``script`` (from :func:`script_syllables`, repeated as needed) for
    ``duration`` seconds: phrases of ``phrase`` syllables with a falling pitch
    (declination) and accents, pauses between phrases, each syllable a vowel through
    the voice's formants under a smooth envelope, and a quiet room-noise floor 60 dB
    below the peak. Peak 1. Returns float64 of shape (round(duration * sr),)."""
    rng = np.random.default_rng(rng)
    n = int(round(duration * sr))
    contour = np.zeros(n)  # relative pitch, in units of f0_range
    segments = []  # (start, length, vowel)
    t, k = int(rng.uniform(0.1, 0.4) * sr), 0
    while t < n:
        start = t
        for j in range(phrase):
            vowel_name, length, accent = script[k % len(script)]
            k += 1
            m = int(length / voice.rate * sr)
            if t + m > n:
                break
            u = np.linspace(0, 1, m)
            contour[t:t + m] = 0.5 - j / phrase + accent * np.sin(np.pi * u)
            segments.append((t, m, vowel_name))
            t += m + int(0.02 * sr)
        if t == start:
            break
        t += int(rng.exponential(voice.pause) * sr) + int(0.05 * sr)
    f0 = voice.f0 * (1 + voice.f0_range * np.clip(contour, -1, 1.5))
    source = glottal_source(f0, n, sr, voice.jitter, rng, voice.shimmer)
    source = source / np.abs(source).max() + voice.breath * rng.standard_normal(n)
    y = np.zeros(n)
    for start, m, vowel_name in segments:
        formants = [f * voice.tract * (1 + d)
                    for f, d in zip(VOWEL_FORMANTS[vowel_name], voice.formant_shift, strict=True)]
        seg = formant_filter(source[start:start + m], formants, sr)
        y[start:start + m] = seg * np.hanning(m) / (np.abs(seg).max() + 1e-12)
    y = y / np.abs(y).max()
    return y + 1e-3 * rng.standard_normal(n)
