"""MIMO convolution, forward and backward, against torch.nn.functional.conv1d at the
lab's shapes (B=32, N=32000, K=40; 1 -> 5 and 5 -> 1 features)."""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

from labutils import conv
from labutils.bench import Case


def _ours(fn, x, h, grad):
    """Forward and backward through ``fn(x, h)`` with h: (K, G, F); returns y and both
    gradients, h's in the (G, F, K) layout of conv1d's weight with the taps flipped."""

    def run():
        xx, hh = x.detach().requires_grad_(), h.detach().requires_grad_()
        y = fn(xx, hh)
        y.backward(grad)
        return y.detach(), xx.grad, hh.grad.flip(0).permute(1, 2, 0)

    return run


def _library(x, weight, grad):
    """Forward and backward through conv1d, causal: pad K - 1 zeros on the left."""

    def run():
        xx, ww = x.detach().requires_grad_(), weight.detach().requires_grad_()
        y = nnf.conv1d(nnf.pad(xx, (ww.shape[-1] - 1, 0)), ww)
        y.backward(grad)
        return y.detach(), xx.grad, ww.grad

    return run


def cases(quick: bool) -> list[Case]:
    batch, n, taps = (4, 2000, 40) if quick else (32, 32000, 40)
    out = []
    for f, g in ((1, 5), (5, 1)):
        gen = torch.Generator().manual_seed(0)
        # positive values: the gradients' long sums do not cancel, so float32 rounding
        # stays far inside the check's tolerance (the timing does not depend on values)
        x = torch.rand(batch, f, n, generator=gen)
        h = torch.rand(taps, g, f, generator=gen) / (taps * f)
        grad = torch.rand(batch, g, n, generator=gen)
        weight = h.flip(0).permute(1, 2, 0).contiguous()
        shape = f"B={batch}, N={n}, K={taps}, {f}->{g}"
        reference = _library(x, weight, grad)
        out.append(Case(f"mimo_conv1d fwd+bwd ({shape})", _ours(conv.mimo_conv1d, x, h, grad),
                        reference, target=2.0, note="blocked Toeplitz matmul"))
        # Its float32 weight gradient sums 10^6 products in another order than conv1d's
        # (relative differences near 2e-4); the tests check it in float64 too.
        out.append(Case(f"mimo_conv1d_loop fwd+bwd ({shape})",
                        _ours(conv.mimo_conv1d_loop, x, h, grad), reference, rtol=1e-3,
                        note="shift and accumulate, as in the lab"))
    return out
