"""MIMO convolution, forward and backward, against torch.nn.functional.conv1d at the
lab's shapes (B=32, N=32000, K=40; 1 -> 5 and 5 -> 1 features)."""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

from labutils import conv
from labutils.bench import Case, forward_backward


def _conv1d(x, h):
    """torch's conv1d as a causal MIMO filter with our tap layout h: (K, G, F): the
    weight is (G, F, K) with the taps flipped, and K - 1 zeros are padded on the left."""
    return nnf.conv1d(nnf.pad(x, (h.shape[0] - 1, 0)), h.flip(0).permute(1, 2, 0))


def cases(quick: bool) -> list[Case]:
    batch, n, taps = (4, 2000, 40) if quick else (32, 32000, 40)
    out = []
    for f, g in ((1, 5), (5, 1)):
        gen = torch.Generator().manual_seed(0)
        # positive values: the gradients' long sums do not cancel, so float32 rounding
        # stays far inside the check's tolerance (the timing does not depend on values)
        x = torch.rand(batch, f, n, generator=gen)
        h = torch.rand(taps, g, f, generator=gen) / (taps * f)
        shape = f"B={batch}, N={n}, K={taps}, {f}->{g}"
        reference = forward_backward(_conv1d, x, h)
        out.append(Case(f"mimo_conv1d fwd+bwd ({shape})", forward_backward(conv.mimo_conv1d, x, h),
                        reference, target=2.0, note="blocked Toeplitz matmul"))
        # Its float32 weight gradient sums 10^6 products in another order than conv1d's
        # (relative differences near 2e-4); the tests check it in float64 too.
        out.append(Case(f"mimo_conv1d_loop fwd+bwd ({shape})",
                        forward_backward(conv.mimo_conv1d_loop, x, h), reference, rtol=1e-3,
                        note="shift and accumulate, as in the lab"))
    return out
