"""Denoising in the short-time Fourier transform (STFT) domain: the STFT and its inverse
from framing and overlap-add, the overlap conditions for perfect reconstruction, noise
estimates and spectral subtraction, the ideal ratio mask, and two learned models that
work on magnitude spectrograms (a linear map of frames and a mask-predicting CNN).

Conventions: signals run along the last axis, (..., N). A spectrogram has shape
(..., F, T) with F = n_fft // 2 + 1 frequencies and T frames, as ``torch.stft`` returns
it. Frame ``t`` starts at sample ``t * hop`` of the signal (after ``n_fft // 2`` samples
of padding on each side when ``center`` is on, so that frame ``t`` is centred on sample
``t * hop``). Phase is always the noisy signal's: every method here changes magnitudes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import nn


def _check_window(window: torch.Tensor, hop: int) -> int:
    if window.dim() != 1 or window.numel() < 2:
        raise ValueError(f"the window must be a vector of at least 2 samples, got shape "
                         f"{tuple(window.shape)}")
    if not 1 <= hop <= window.numel():
        raise ValueError(f"hop must lie in [1, {window.numel()}] (the window length), got "
                         f"{hop}; a larger hop leaves samples that no frame sees")
    return window.numel()


def frame(x: torch.Tensor, n_fft: int, hop: int, center: bool = True,
          pad_mode: str = "reflect") -> torch.Tensor:
    """Cut ``x`` (..., N) into frames of ``n_fft`` samples, ``hop`` apart: (..., T, n_fft).

    With ``center`` the signal is first padded by ``n_fft // 2`` samples on each side
    (``pad_mode`` "reflect" as ``torch.stft``, or "constant" as ``librosa.stft``), and
    T = 1 + N // hop; without it T = 1 + (N - n_fft) // hop.
    """
    if center:
        pad = n_fft // 2
        if pad_mode == "reflect" and x.shape[-1] <= pad:
            raise ValueError(f"reflect padding needs more than n_fft // 2 = {pad} samples, "
                             f"got {x.shape[-1]}; use pad_mode='constant' or a shorter n_fft")
        shape = x.shape
        x = nnf.pad(x.reshape(-1, 1, shape[-1]), (pad, pad), mode=pad_mode)
        x = x.reshape(*shape[:-1], -1)
    if x.shape[-1] < n_fft:
        raise ValueError(f"the signal has {x.shape[-1]} samples, fewer than one frame of "
                         f"n_fft = {n_fft}; use center=True or a shorter n_fft")
    return x.unfold(-1, n_fft, hop)


def stft(x: torch.Tensor, window: torch.Tensor, hop: int, center: bool = True,
         pad_mode: str = "reflect") -> torch.Tensor:
    """The STFT from its definition, ``X[f, t] = sum_n w[n] x[t hop + n] e^{-2 pi i f n / L}``
    with L = len(window) = n_fft: frame, window, real FFT of each frame.

    ``x``: (..., N) real. Returns complex (..., L // 2 + 1, T), equal to ``torch.stft``
    with the same window, ``hop_length=hop``, ``center`` and ``pad_mode``.
    """
    n_fft = _check_window(window, hop)
    frames = frame(x, n_fft, hop, center, pad_mode) * window.to(x.dtype)
    return torch.fft.rfft(frames, dim=-1).transpose(-1, -2)


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Overlap-add frames (..., T, L) placed ``hop`` samples apart: (..., L + (T - 1) hop),
    ``y[n] = sum_t frames[t, n - t hop]``."""
    *batch, n_frames, length = frames.shape
    total = length + (n_frames - 1) * hop
    folded = nnf.fold(frames.reshape(-1, n_frames, length).transpose(1, 2),
                      output_size=(1, total), kernel_size=(1, length), stride=(1, hop))
    return folded.reshape(*batch, total)


def overlap_add_envelope(window: torch.Tensor, hop: int, n_frames: int,
                         power: int = 1) -> torch.Tensor:
    """``sum_t w[n - t hop]^power`` for ``n_frames`` frames: (L + (n_frames - 1) hop,).
    Constant away from the ends: COLA for ``power=1``; ``power=2`` is the weighted
    overlap-add (WOLA) condition when analysis and synthesis use the same window."""
    _check_window(window, hop)
    return overlap_add((window ** power).expand(n_frames, -1), hop)


def cola_ripple(window: torch.Tensor, hop: int, power: int = 1) -> float:
    """How far the overlap-add envelope (:func:`overlap_add_envelope`) is from constant
    in its steady state: (max - min) / mean over one hop well inside the signal. 0 means
    the window and hop satisfy COLA (``power=1``) or its WOLA form (``power=2``)."""
    n_fft = _check_window(window, hop)
    overlap = -(-n_fft // hop)  # frames that cover one sample
    env = overlap_add_envelope(window.double(), hop, 2 * overlap + 1, power)
    middle = env[overlap * hop: overlap * hop + hop]  # covered by `overlap` full frames
    return float((middle.max() - middle.min()) / middle.mean())


def istft(spec: torch.Tensor, window: torch.Tensor, hop: int, length: int,
          center: bool = True) -> torch.Tensor:
    """The inverse STFT by weighted overlap-add (Griffin and Lim, 1984): inverse FFT of
    each frame, multiply by the window, overlap-add, divide by ``sum_t w[n - t hop]^2``.
    It is the least-squares signal for any (even modified) spectrogram, and returns the
    signal exactly when the spectrogram is unmodified and that sum is nowhere zero.

    ``spec``: complex (..., L // 2 + 1, T). Returns (..., length), as ``torch.istft``.
    """
    n_fft = _check_window(window, hop)
    if spec.shape[-2] != n_fft // 2 + 1:
        raise ValueError(f"the spectrogram has {spec.shape[-2]} frequencies; a window of "
                         f"{n_fft} samples needs n_fft // 2 + 1 = {n_fft // 2 + 1}")
    window = window.to(spec.real.dtype)
    frames = torch.fft.irfft(spec.transpose(-1, -2), n=n_fft, dim=-1) * window
    y = overlap_add(frames, hop)
    envelope = overlap_add_envelope(window, hop, spec.shape[-1], power=2)
    start = n_fft // 2 if center else 0
    y, envelope = y[..., start:start + length], envelope[start:start + length]
    if envelope.shape[-1] < length or envelope.abs().min() < 1e-11:
        raise ValueError(f"the frames do not cover {length} samples with a nonzero window "
                         "sum (NOLA fails); use a smaller hop, more frames or a smaller length")
    return y / envelope


@dataclass(frozen=True)
class StftConfig:
    """The STFT used after it has been built by hand: ``torch.stft`` / ``torch.istft``
    with a periodic Hann window of ``n_fft`` samples, ``hop`` apart, centred frames."""

    n_fft: int = 1024
    hop: int = 256

    def __post_init__(self):
        if self.n_fft < 2 or not 1 <= self.hop <= self.n_fft:
            raise ValueError(f"need n_fft >= 2 and 1 <= hop <= n_fft, got n_fft={self.n_fft}, "
                             f"hop={self.hop}")

    def window(self, device=None) -> torch.Tensor:
        return torch.hann_window(self.n_fft, device=device)

    def analyze(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (..., N) real → complex spectrogram (..., n_fft // 2 + 1, 1 + N // hop)."""
        shape = x.shape
        spec = torch.stft(x.reshape(-1, shape[-1]), self.n_fft, self.hop,
                          window=self.window(x.device), return_complex=True)
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    def synthesize(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Complex (..., F, T) → signal (..., length) by ``torch.istft``."""
        shape = spec.shape
        y = torch.istft(spec.reshape(-1, *shape[-2:]), self.n_fft, self.hop,
                        window=self.window(spec.device), length=length)
        return y.reshape(*shape[:-2], length)


def with_phase(magnitude: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
    """The complex spectrogram with ``magnitude`` (..., F, T) and the phase of ``spec``
    (where ``spec`` is 0 its phase is taken as 0)."""
    return torch.polar(magnitude.to(spec.real.dtype), spec.angle())


# ---------------------------------------------------------------- noise estimates


def quietest_frames(power: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    """A boolean mask (..., T) of the ``fraction`` of frames with the least energy,
    ``sum_f power[f, t]``: where speech pauses, these frames hold noise only.
    ``power``: (..., F, T). At least one frame is chosen."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    energy = power.sum(-2)
    k = max(1, int(round(fraction * energy.shape[-1])))
    threshold = energy.kthvalue(k, dim=-1, keepdim=True).values
    return energy <= threshold


def noise_from_frames(power: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """The noise power spectrum as the mean of ``power`` (..., F, T) over the frames
    where ``frames`` (..., T) is True. Returns (..., F, 1), to broadcast over frames."""
    if frames.shape != power.shape[:-2] + power.shape[-1:]:
        raise ValueError(f"frames {tuple(frames.shape)} must have the shape of power "
                         f"{tuple(power.shape)} without its frequency axis")
    count = frames.sum(-1, keepdim=True)
    if (count == 0).any():
        raise ValueError("no frame is selected for a signal; select at least one")
    weights = frames.to(power.dtype).unsqueeze(-2)
    return (power * weights).sum(-1, keepdim=True) / count.unsqueeze(-2).to(power.dtype)


def minimum_statistics(power: torch.Tensor, window: int, smoothing: float = 0.8,
                       bias: float = 1.0) -> torch.Tensor:
    """A noise power estimate that needs no pause detector (after Martin, 2001, with a
    fixed smoothing and bias): smooth each frequency's power over frames,
    ``P[t] = a P[t-1] + (1 - a) power[t]`` with ``P[0] = power[0]``, then take the minimum
    of ``P`` over the last ``window`` frames and multiply by ``bias`` (the minimum of a
    noisy estimate lies below its mean; a bias near 1.5-2 compensates it).

    ``power``: (..., F, T). Returns (..., F, T).
    """
    if window < 1:
        raise ValueError(f"window must be at least one frame, got {window}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must lie in [0, 1), got {smoothing}")
    smoothed = torch.empty_like(power)
    smoothed[..., 0] = power[..., 0]
    for t in range(1, power.shape[-1]):
        smoothed[..., t] = smoothing * smoothed[..., t - 1] + (1 - smoothing) * power[..., t]
    padded = nnf.pad(smoothed, (window - 1, 0), value=float("inf"))
    return bias * padded.unfold(-1, window, 1).amin(-1)


def spectral_subtraction_gain(noisy_power: torch.Tensor, noise_power: torch.Tensor,
                              over: float = 1.0, floor: float = 0.01) -> torch.Tensor:
    """Power spectral subtraction (Berouti et al., 1979) as a gain on the noisy STFT:
    ``|S|^2 = max(|Y|^2 - over N, floor |Y|^2)``, so ``G = sqrt(max(1 - over N / |Y|^2,
    floor))``. ``over`` > 1 subtracts more than the estimate; the ``floor`` keeps a little
    noise instead of "musical" holes. Shapes broadcast; returns G in [sqrt(floor), 1]."""
    if over <= 0 or not 0 <= floor <= 1:
        raise ValueError(f"need over > 0 and 0 <= floor <= 1, got over={over}, floor={floor}")
    ratio = noise_power / noisy_power.clamp_min(torch.finfo(noisy_power.dtype).tiny)
    return (1 - over * ratio).clamp(min=floor, max=1).sqrt()


def ideal_ratio_mask(clean_spec: torch.Tensor, noise_spec: torch.Tensor,
                     beta: float = 0.5) -> torch.Tensor:
    """The ideal ratio mask ``(|S|^2 / (|S|^2 + |N|^2))^beta`` (Wang et al., 2014) from the
    clean and the noise STFTs (an oracle: it needs the clean signal). ``beta = 0.5`` is
    the square root of the Wiener gain. Shapes (..., F, T); values in [0, 1]."""
    s, n = clean_spec.abs().pow(2), noise_spec.abs().pow(2)
    total = s + n
    return torch.where(total > 0, s / total.clamp_min(torch.finfo(total.dtype).tiny),
                       torch.zeros_like(total)).pow(beta)


# ---------------------------------------------------------------- learned models


class FrameLinear(nn.Module):
    """A linear map from noisy to clean magnitude frames, ``s_t = W [y_{t-c}; ...;
    y_{t+c}] + b``: each output frame (F,) from its 2c + 1 neighbouring input frames,
    zeros beyond the ends. ``weight`` has shape (F, (2c + 1) F), block ``k`` (columns
    ``k F .. (k+1) F``) for frame offset ``k - c``. It starts as the identity on the
    centre frame. Input and output: magnitudes (B, F, T)."""

    def __init__(self, n_freq: int, context: int = 0):
        super().__init__()
        if n_freq < 1 or context < 0:
            raise ValueError(f"need n_freq >= 1 and context >= 0, got {n_freq}, {context}")
        self.context = context
        self.linear = nn.Linear((2 * context + 1) * n_freq, n_freq)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[:, context * n_freq:(context + 1) * n_freq] = torch.eye(n_freq)
            self.linear.bias.zero_()

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        n_freq = self.linear.out_features
        if mag.dim() != 3 or mag.shape[1] != n_freq:
            raise ValueError(f"expected magnitudes (B, {n_freq}, T), got {tuple(mag.shape)}")
        c = self.context
        stacked = nnf.pad(mag, (c, c)).unfold(-1, 2 * c + 1, 1)  # (B, F, T, 2c + 1)
        stacked = stacked.permute(0, 2, 3, 1).flatten(2)  # (B, T, (2c + 1) F), offset-major
        return self.linear(stacked).transpose(1, 2)


class MaskCNN(nn.Module):
    """A 2-D CNN on the log-magnitude spectrogram that predicts a mask in (0, 1).

    It sees two images of the clip's log power ``log(|Y|^2 + eps)``: one minus its mean
    over the clip (a louder recording gives the same picture), one minus the log of the
    noise power spectrum estimated from the clip's quietest ``noise_fraction`` of frames
    (:func:`quietest_frames`), which is the a-posteriori SNR that spectral subtraction
    uses and tells a few local convolutions what the whole second sounds like. They pass
    through ``len(channels)`` 3 x 3 convolutions with ReLU, the i-th dilated by
    ``dilations[i]`` along time, then a 3 x 3 convolution to one channel and a sigmoid.
    ``forward`` returns the enhanced magnitude ``mask * |Y|``, shape (B, F, T) like the
    input magnitudes; :meth:`mask` returns the mask itself.
    """

    def __init__(self, channels=(16, 16, 16), dilations=(1, 1, 1), noise_fraction: float = 0.2,
                 eps: float = 1e-8):
        super().__init__()
        if len(channels) != len(dilations) or not channels:
            raise ValueError(f"give one dilation per hidden layer: {len(channels)} channels "
                             f"{tuple(channels)}, {len(dilations)} dilations {tuple(dilations)}")
        self.noise_fraction, self.eps = noise_fraction, eps
        layers, previous = [], 2
        for width, dilation in zip(channels, dilations, strict=True):
            layers += [nn.Conv2d(previous, width, 3, padding=(1, dilation),
                                 dilation=(1, dilation)), nn.ReLU()]
            previous = width
        layers.append(nn.Conv2d(previous, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def features(self, mag: torch.Tensor) -> torch.Tensor:
        """The two input images (B, 2, F, T) for magnitudes ``mag`` (B, F, T)."""
        if mag.dim() != 3:
            raise ValueError(f"expected magnitudes (B, F, T), got {tuple(mag.shape)}")
        power = mag.pow(2)
        log_power = torch.log(power + self.eps)
        noise = noise_from_frames(power, quietest_frames(power, self.noise_fraction))
        return torch.stack([log_power - log_power.mean(dim=(1, 2), keepdim=True),
                            log_power - torch.log(noise + self.eps)], dim=1)

    def mask(self, mag: torch.Tensor) -> torch.Tensor:
        """The mask (B, F, T) for magnitudes ``mag`` (B, F, T)."""
        return torch.sigmoid(self.net(self.features(mag))).squeeze(1)

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        return self.mask(mag) * mag

    def receptive_field(self) -> tuple[int, int]:
        """(frequencies, frames) that one output sees through the convolutions."""
        convs = [m for m in self.net if isinstance(m, nn.Conv2d)]
        return (1 + 2 * len(convs), 1 + sum(2 * m.dilation[1] for m in convs))


class SpectralSubtraction(nn.Module):
    """Power spectral subtraction as a magnitude model (no parameters to learn): the noise
    spectrum is the mean power of the clip's quietest ``noise_fraction`` of frames, and
    the gain is :func:`spectral_subtraction_gain`. Magnitudes (B, F, T) in and out."""

    def __init__(self, noise_fraction: float = 0.2, over: float = 1.0, floor: float = 0.01):
        super().__init__()
        self.noise_fraction, self.over, self.floor = noise_fraction, over, floor

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        power = mag.pow(2)
        noise = noise_from_frames(power, quietest_frames(power, self.noise_fraction))
        return spectral_subtraction_gain(power, noise, self.over, self.floor) * mag


class Enhancer(nn.Module):
    """Waveform in, waveform out around a magnitude model: STFT of the noisy signal,
    ``model(|Y|)`` gives the enhanced magnitude, which takes the noisy phase, then the
    inverse STFT. ``noisy``: (B, 1, N) or (B, N); returns the same shape."""

    def __init__(self, model: nn.Module, stft: StftConfig):
        super().__init__()
        self.model, self.stft = model, stft

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        spec = self.stft.analyze(noisy)
        shape = spec.shape
        mag = self.model(spec.abs().reshape(-1, *shape[-2:])).reshape(shape)
        return self.stft.synthesize(with_phase(mag, spec), noisy.shape[-1])


def oracle_irm(noisy: torch.Tensor, clean: torch.Tensor, stft: StftConfig,
               beta: float = 0.5) -> torch.Tensor:
    """The oracle: the noisy STFT times the ideal ratio mask of the clean signal and the
    noise ``noisy - clean``, back to a waveform. Shapes (..., N) in and out."""
    spec, clean_spec = stft.analyze(noisy), stft.analyze(clean)
    mask = ideal_ratio_mask(clean_spec, spec - clean_spec, beta)
    return stft.synthesize(mask * spec, noisy.shape[-1])
