"""Convolution from scratch: the shift operator, causal 1-D and MIMO convolutions, the
(MIMO) CNNs built from them, and the optimal linear FIR (Wiener) filter they are
compared with.

Conventions: signals run along the last axis; filters are causal and the signal is zero
before its start, so ``y[n] = sum_k h[k] x[n - k]`` has as many samples as ``x``. A MIMO
input has shape (B, F, N) (batch, features, time) and a MIMO filter shape (K, G, F): one
G x F matrix ``H_k`` per tap, as in ``y = sum_k H_k S^k x`` with the shift ``S`` acting
along time (on every feature).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as nnf
from torch import nn


def shift(x: torch.Tensor, k: int) -> torch.Tensor:
    """The shift operator applied ``k`` times, ``S^k x``: delay ``x`` (..., N) by ``k``
    samples along the last axis, zeros coming in at the start. Same shape as ``x``."""
    if k < 0:
        raise ValueError(f"the shift must be a delay (k >= 0), got k={k}")
    n = x.shape[-1]
    if k == 0:
        return x
    if k >= n:
        return torch.zeros_like(x)
    return nnf.pad(x[..., : n - k], (k, 0))


def convolution_1d(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Causal convolution ``y[n] = sum_k h[k] x[n - k]`` = ``sum_k h[k] S^k x``.

    ``x``: (..., N), ``h``: (K,). Returns (..., N).
    """
    if h.dim() != 1 or h.numel() == 0:
        raise ValueError(f"h must be a non-empty vector of taps (K,), got shape {tuple(h.shape)}")
    y = torch.zeros_like(x, dtype=torch.result_type(x, h))
    for k in range(h.shape[0]):
        y = y + h[k] * shift(x, k)
    return y


def _check_mimo(x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the shapes of a MIMO convolution and return ``x`` and ``h`` in one floating
    dtype: an integer signal or filter is promoted (to torch's default float dtype when
    both are integers), never convolved in integer arithmetic."""
    if x.dim() != 3:
        raise ValueError(f"x must have shape (B, F, N), got {tuple(x.shape)}; "
                         "add the missing axes with x.reshape(B, F, N)")
    if h.dim() != 3 or h.shape[0] == 0:
        raise ValueError(f"h must have shape (K, G, F) with K >= 1, got {tuple(h.shape)}")
    if x.shape[1] != h.shape[2]:
        raise ValueError(f"x has F={x.shape[1]} features but the filter h {tuple(h.shape)} "
                         f"= (K, G, F) expects F={h.shape[2]}")
    dtype = torch.result_type(x, h)
    if not dtype.is_floating_point and not dtype.is_complex:
        dtype = torch.get_default_dtype()
    return x.to(dtype), h.to(dtype)


def mimo_conv1d_loop(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """MIMO convolution by shift and accumulate: ``y = sum_k H_k S^k x``.

    ``x``: (B, F, N), ``h``: (K, G, F). Returns (B, G, N) with
    ``y[:, g, n] = sum_k sum_f h[k, g, f] x[:, f, n - k]``. Clear but slow: K passes.
    """
    x, h = _check_mimo(x, h)
    y = x.new_zeros(x.shape[0], h.shape[1], x.shape[2])
    for k in range(h.shape[0]):
        y = y + torch.matmul(h[k], shift(x, k))
    return y


def toeplitz_block(h: torch.Tensor, block: int) -> torch.Tensor:
    """The piece of the convolution matrix that maps a window of ``block + K - 1`` input
    samples (the block and its K - 1 samples of history) to the ``block`` outputs.

    ``h``: (K, G, F). Returns T of shape (block, block + K - 1, G, F) with
    ``T[p, j] = h[p + K - 1 - j]`` where that tap exists, else 0.
    """
    taps, g, f = h.shape
    p = torch.arange(block, device=h.device)[:, None]
    j = torch.arange(block + taps - 1, device=h.device)[None, :]
    k = p + taps - 1 - j
    padded = torch.cat([h, h.new_zeros(1, g, f)])  # index K reads a zero matrix
    return padded[torch.where((k >= 0) & (k < taps), k, taps)]


def mimo_conv1d(x: torch.Tensor, h: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """Fast MIMO convolution, the same result as :func:`mimo_conv1d_loop`, as one matrix
    product: the signal is cut into blocks of ``block`` samples (default ``max(K, 32)``),
    each seen through a window that adds its K - 1 samples of history, and every block
    is multiplied by the same small Toeplitz matrix (:func:`toeplitz_block`).

    ``x``: (B, F, N), ``h``: (K, G, F). Returns (B, G, N).
    """
    x, h = _check_mimo(x, h)
    batch, _, n = x.shape
    taps, g, _ = h.shape
    block = max(taps, 32) if block is None else block
    if block < 1:
        raise ValueError(f"block must be a positive number of samples, got {block}")
    if n == 0:  # an empty signal has an empty output
        return x.new_zeros(batch, g, 0)
    blocks = -(-n // block)
    padded = nnf.pad(x, (taps - 1, blocks * block - n))  # history before, fill after
    windows = padded.unfold(-1, block + taps - 1, block)  # (B, F, blocks, block + K - 1)
    y = torch.einsum("pjgf,bfnj->bgnp", toeplitz_block(h, block), windows)
    return y.reshape(batch, g, blocks * block)[..., :n]


def torch_conv1d(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The same MIMO convolution with ``torch.nn.functional.conv1d``, which computes a
    cross-correlation: flip the taps and pad K - 1 zeros on the left only (causal).

    ``x``: (B, F, N), ``h``: (K, G, F). Returns (B, G, N).
    """
    x, h = _check_mimo(x, h)
    weight = h.flip(0).permute(1, 2, 0)  # (G, F, K), the layout conv1d wants
    return nnf.conv1d(nnf.pad(x, (h.shape[0] - 1, 0)), weight)


def _check_taps(taps: Sequence[int], layers: int) -> list[int]:
    taps = [int(k) for k in taps]
    if len(taps) != layers:
        raise ValueError(f"there are L={layers} layers but {len(taps)} tap counts {taps}; "
                         "give one number of taps per layer")
    if layers < 1 or any(k < 1 for k in taps):
        raise ValueError(f"need L >= 1 layers with at least one tap each, got L={layers}, "
                         f"taps={taps}")
    return taps


def _check_signal(x: torch.Tensor, features: int) -> None:
    if x.dim() != 3 or x.shape[1] != features:
        raise ValueError(f"expected input of shape (B, {features}, N), got {tuple(x.shape)}; "
                         f"a batch of single signals (B, N) becomes x.unsqueeze(1)")


class ConvLayer(nn.Module):
    """One single-channel convolutional layer, ``z = sum_k h_k S^k x``, taps ``h``: (K,).

    Input and output: (B, 1, N). Starts near the identity, as :class:`MIMOConvLayer`."""

    def __init__(self, taps: int):
        super().__init__()
        self.h = nn.Parameter(_near_identity(taps, 1, 1)[:, 0, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_signal(x, 1)
        return mimo_conv1d(x, self.h.view(-1, 1, 1))


class CNN(nn.Module):
    """Single-channel CNN: ``x_l = tanh(sum_k h_lk S^k x_{l-1})``, no tanh after the
    last layer. ``L`` layers with ``taps[l]`` taps each. Input and output (B, 1, N)."""

    def __init__(self, L: int, taps: Sequence[int]):
        super().__init__()
        self.layers = nn.ModuleList(ConvLayer(k) for k in _check_taps(taps, L))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _forward_stack(self.layers, x)


def _near_identity(K: int, G: int, F: int, noise: float = 0.1) -> torch.Tensor:
    """Taps (K, G, F) that pass the input through: ``H_0 = 1 / sqrt(F G)`` spreads each
    input evenly over the outputs (a stack from 1 feature back to 1 is then the identity,
    as tanh z ~ z for small z), plus Gaussian noise of std ``noise / sqrt(K F)`` that
    breaks the symmetry between features."""
    if min(F, G, K) < 1:
        raise ValueError(f"F, G and K must be positive, got F={F}, G={G}, K={K}")
    h = torch.randn(K, G, F) * noise / (K * F) ** 0.5
    h[0] += 1.0 / (F * G) ** 0.5
    return h


class MIMOConvLayer(nn.Module):
    """A MIMO convolutional layer, ``y = sum_k H_k S^k x`` with ``H_k``: G x F.

    Input (B, F, N), output (B, G, N); ``self.h`` has shape (K, G, F). It starts near
    the identity (:func:`_near_identity`): a denoiser begins by passing its input on."""

    def __init__(self, F: int, G: int, K: int):
        super().__init__()
        self.h = nn.Parameter(_near_identity(K, G, F))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_signal(x, self.h.shape[2])
        return mimo_conv1d(x, self.h)


class MIMOCNN(nn.Module):
    """MIMO CNN: ``x_l = tanh(sum_k H_lk S^k x_{l-1})``, no tanh after the last layer.

    ``L`` layers, ``taps`` = [K_1, ..., K_L], ``features`` = [F_0, ..., F_L]; layer l maps
    F_{l-1} to F_l features. Input (B, F_0, N), output (B, F_L, N)."""

    def __init__(self, L: int, taps: Sequence[int], features: Sequence[int]):
        super().__init__()
        taps = _check_taps(taps, L)
        if len(features) != L + 1:
            raise ValueError(f"there are L={L} layers, so features needs L + 1 = {L + 1} "
                             f"entries [F_0, ..., F_L], got {list(features)}")
        self.layers = nn.ModuleList(
            MIMOConvLayer(features[i], features[i + 1], taps[i]) for i in range(L)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _forward_stack(self.layers, x)


def _forward_stack(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for i, layer in enumerate(layers):
        x = layer(x)
        if i < len(layers) - 1:
            x = torch.tanh(x)
    return x


def wiener_fir(noisy: torch.Tensor, clean: torch.Tensor, taps: int) -> torch.Tensor:
    """The causal FIR filter of ``taps`` taps with the least squared error
    ``sum ||clean - h * noisy||^2`` over all training signals, from the normal equations
    ``R h = p`` (exact, not the Toeplitz approximation): ``R[i, j] = sum_n x[n-i] x[n-j]``
    and ``p[i] = sum_n y[n] x[n-i]``, with x zero before its start.

    ``noisy``, ``clean``: (Q, N) or (Q, 1, N). Returns h: (taps,) in float64.
    """
    x = noisy.reshape(-1, noisy.shape[-1]).double()
    y = clean.reshape(-1, clean.shape[-1]).double()
    if x.shape != y.shape:
        raise ValueError(f"noisy {tuple(noisy.shape)} and clean {tuple(clean.shape)} differ")
    n = x.shape[-1]
    if not 1 <= taps <= n:
        raise ValueError(f"taps must lie in [1, {n}] for signals of {n} samples, got {taps}")
    size = 1 << (n + taps - 2).bit_length()  # no circular wrap for lags below taps
    power = torch.zeros(size // 2 + 1, dtype=torch.float64)
    cross = torch.zeros(size // 2 + 1, dtype=torch.complex128)
    for start in range(0, x.shape[0], 64):  # chunks bound the memory
        spec = torch.fft.rfft(x[start:start + 64], size)
        power += spec.abs().pow(2).sum(0)
        cross += (torch.fft.rfft(y[start:start + 64], size) * spec.conj()).sum(0)
    auto = torch.fft.irfft(power, size)[:taps]  # a[d] = sum_m x[m] x[m - d]
    p = torch.fft.irfft(cross, size)[:taps]  # p[i] = sum_n y[n] x[n - i]
    i = torch.arange(taps)
    lag = (i[None, :] - i[:, None]).abs()
    return torch.linalg.solve(auto[lag] - _tail(x, taps), p)


def _tail(x: torch.Tensor, taps: int) -> torch.Tensor:
    """The terms a[|i - j|] counts but R[i, j] does not: products of the last
    ``min(i, j)`` samples, which the smaller of the two delays pushes past the end of the
    clip: ``R[i, j] = a[|i - j|] - sum_{m >= N - min(i, j)} x[m] x[m - |i - j|]``.
    Shape (taps, taps)."""
    end = x[:, -(2 * taps - 1):] if x.shape[-1] >= 2 * taps - 1 else nnf.pad(
        x, (2 * taps - 1 - x.shape[-1], 0))
    last = end[:, -taps:]  # x[N - taps + t], t = 0..taps-1
    # prod[d, t] = sum_q x[N - taps + t] x[N - taps + t - d]
    lagged = torch.stack([end[:, taps - 1 - d: 2 * taps - 1 - d] for d in range(taps)], 1)
    prod = (last[:, None, :] * lagged).sum(0)  # (d, t)
    # R[i, j] = a[d] - tail(min(i, j), d), d = |i - j|: the last min(i, j) samples
    tail_by_lag = prod.flip(-1).cumsum(-1)  # [d, i - 1] for i >= 1
    tail_by_lag = nnf.pad(tail_by_lag, (1, 0))[:, :taps]  # [d, i], tail(0, d) = 0
    i = torch.arange(taps)
    return tail_by_lag[(i[:, None] - i[None, :]).abs(), torch.minimum(i[:, None], i[None, :])]
