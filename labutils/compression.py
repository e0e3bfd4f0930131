"""Network compression by truncated SVD: a dense layer ``y = W x + b`` with ``W`` of shape
(out, in) becomes two thin layers ``y = A (B x) + b`` with ``A`` (out, r) and ``B`` (r, in),
the best rank-r approximation of ``W`` (Eckart-Young), plus the parameter and memory
counts that say what was saved, and the fully connected classifier it is applied to."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn


def mlp(n_in: int, n_classes: int, width: int = 1024, depth: int = 5,
        dropout: float = 0.2) -> nn.Sequential:
    """The classifier: ``depth`` hidden layers of ``width`` units, each Linear → ReLU →
    Dropout(``dropout``), then a Linear to ``n_classes`` logits. Input (batch, n_in) (an
    image is flattened first), output (batch, n_classes)."""
    if n_in < 1 or n_classes < 2 or width < 1 or depth < 1:
        raise ValueError(f"mlp needs n_in >= 1, n_classes >= 2, width >= 1 and depth >= 1; "
                         f"got {n_in}, {n_classes}, {width}, {depth}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout is a probability in [0, 1), got {dropout}")
    layers: list[nn.Module] = [nn.Flatten()]
    sizes = [n_in] + [width] * depth
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def mlp_parameters(n_in: int, n_classes: int, width: int, depth: int) -> int:
    """Parameters of :func:`mlp`: ``(n_in + 1) w + (depth - 1)(w + 1) w + (w + 1) n_classes``
    for width ``w`` (weights and biases of every layer)."""
    return (n_in + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * n_classes


def width_for_parameters(n_in: int, n_classes: int, depth: int, parameters: int) -> int:
    """The widest :func:`mlp` with at most ``parameters`` parameters (at least width 1):
    the control network that has the same budget as a compressed one."""
    width = 1
    while mlp_parameters(n_in, n_classes, width + 1, depth) <= parameters:
        width += 1
    return width


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` modules of ``model`` in the order ``model.modules()`` visits them
    (for :func:`mlp`, input layer first, output layer last)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def dense_parameters(n_in: int, n_out: int, bias: bool = True) -> int:
    """Parameters of a dense layer: ``n_out * n_in`` weights, plus ``n_out`` biases."""
    return n_out * n_in + (n_out if bias else 0)


def factorized_parameters(n_in: int, n_out: int, rank: int, bias: bool = True) -> int:
    """Parameters of the rank-``rank`` factorisation: ``rank * (n_in + n_out)`` weights,
    plus ``n_out`` biases (the bias stays on the second layer)."""
    return rank * (n_in + n_out) + (n_out if bias else 0)


def rank_for_factor(n_in: int, n_out: int, factor: float) -> int:
    """The largest rank whose factorised weights are at most ``1/factor`` of the dense
    weights: ``floor(n_in * n_out / (factor * (n_in + n_out)))``, at least 1.
    (Biases are left out of the ratio; they are the same in both forms.)"""
    if factor <= 0:
        raise ValueError(f"the compression factor must be positive, got {factor}")
    return max(1, math.floor(n_in * n_out / (factor * (n_in + n_out))))


def rank_for_energy(singular_values, energy: float) -> int:
    """The smallest rank r whose singular values keep a fraction ``energy`` of the squared
    Frobenius norm: ``sum_{i<r} s_i^2 >= energy * sum_i s_i^2``. ``singular_values`` is 1-D,
    in decreasing order (as ``torch.linalg.svdvals`` returns them)."""
    s = np.asarray(singular_values, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or np.any(s < 0) or np.any(np.diff(s) > 1e-12 * s.max()):
        raise ValueError("singular_values must be a non-empty 1-D array, non-negative and "
                         "in decreasing order (as torch.linalg.svdvals returns them)")
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy is the fraction of sum(s**2) to keep, in (0, 1]; got {energy}")
    kept = np.cumsum(s**2) / np.sum(s**2)
    # a tolerance so that energy=1 stops at the last non-zero value despite rounding
    return min(int(np.searchsorted(kept, energy - 1e-12) + 1), s.size)


def svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The thin SVD ``W = U diag(S) Vh`` of a (out, in) weight, computed in float64 and
    returned in the weight's dtype: U (out, k), S (k,), Vh (k, in), k = min(out, in)."""
    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    return u.to(weight.dtype), s.to(weight.dtype), vh.to(weight.dtype)


def factorize(layer: nn.Linear, rank: int, usv=None) -> nn.Sequential:
    """Replace ``layer`` by ``Linear(in, rank, bias=False)`` then ``Linear(rank, out)``
    whose product is the rank-``rank`` truncated SVD of its weight. The singular values are
    split evenly, ``B = diag(sqrt(s_r)) Vh_r`` and ``A = U_r diag(sqrt(s_r))``, so both
    factors have the same scale for fine-tuning. ``usv`` is a precomputed :func:`svd`."""
    n_out, n_in = layer.weight.shape
    if not 1 <= rank <= min(n_in, n_out):
        raise ValueError(f"rank must be between 1 and min(in, out) = {min(n_in, n_out)} for a "
                         f"{n_in} -> {n_out} layer, got {rank}")
    u, s, vh = usv if usv is not None else svd(layer.weight)
    root = s[:rank].sqrt()
    like = {"dtype": layer.weight.dtype, "device": layer.weight.device}
    first = nn.Linear(n_in, rank, bias=False, **like)
    second = nn.Linear(rank, n_out, bias=layer.bias is not None, **like)
    with torch.no_grad():
        first.weight.copy_(root[:, None] * vh[:rank])
        second.weight.copy_(u[:, :rank] * root[None, :])
        if layer.bias is not None:
            second.bias.copy_(layer.bias)
    return nn.Sequential(first, second)


def compress(model: nn.Module, ranks, svds=None) -> nn.Module:
    """A copy of ``model`` with its i-th ``nn.Linear`` (order of :func:`linear_layers`)
    factorised at rank ``ranks[i]``; ``None`` keeps that layer dense. ``svds`` is an optional
    list of precomputed :func:`svd` results, one per layer, so that many ranks are cheap.
    The original model is not changed."""
    layers = linear_layers(model)
    ranks = list(ranks)
    if len(ranks) != len(layers):
        raise ValueError(f"the model has {len(layers)} linear layers, got {len(ranks)} ranks")
    if svds is not None and len(svds) != len(layers):
        raise ValueError(f"svds has {len(svds)} entries for {len(layers)} linear layers")
    out = copy.deepcopy(model)
    replace = {id(new): i for i, new in enumerate(linear_layers(out))}
    for parent in list(out.modules()):
        for name, child in parent.named_children():
            i = replace.get(id(child))
            if i is not None and ranks[i] is not None:
                usv = svds[i] if svds is not None else None
                setattr(parent, name, factorize(layers[i], int(ranks[i]), usv))
    return out


def count_parameters(model: nn.Module) -> int:
    """The number of parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())


def memory_bytes(model: nn.Module) -> int:
    """Bytes held by the parameters and buffers of ``model`` (4 per float32 value)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)
