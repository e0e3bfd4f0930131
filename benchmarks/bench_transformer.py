"""Our attention (forward + backward) against torch's ``scaled_dot_product_attention``, and
our multi-head attention against ``torch.nn.MultiheadAttention``."""

from __future__ import annotations

import torch

from labutils import transformer as tr
from labutils.bench import Case, forward_backward


def _attention_case(name, shape, mask, target):
    """Forward and backward of attention on q, k, v of ``shape`` (B, h, T, d_head)."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(shape, generator=gen) for _ in range(3))

    return Case(
        name,
        ours=forward_backward(lambda *qkv: tr.scaled_dot_product_attention(*qkv, mask)[0],
                              q, k, v),
        reference=forward_backward(lambda *qkv: torch.nn.functional.scaled_dot_product_attention(
            *qkv, attn_mask=mask), q, k, v),
        target=target,
        note="forward + backward",
    )


def _multihead_case(batch, length, d_model, heads):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(d_model, heads, batch_first=True)
    ours = tr.load_torch_weights(tr.MultiHeadAttention(d_model, heads), theirs)
    x = torch.randn(batch, length, d_model)
    return Case(
        f"multi-head attention, B={batch} T={length} d={d_model} h={heads}",
        ours=lambda: ours(x, x, x)[0].detach(),
        reference=lambda: theirs(x, x, x, average_attn_weights=False)[0].detach(),
        note="forward, weights returned by both",
    )


def cases(quick: bool) -> list[Case]:
    b, h, t, d = (2, 2, 16, 8) if quick else (32, 8, 128, 64)
    causal = tr.causal_mask(t)
    return [
        _attention_case(f"attention, B={b} h={h} T={t} d_head={d}", (b, h, t, d), None,
                        None if quick else 1.5),
        _attention_case(f"attention + causal mask, B={b} h={h} T={t} d_head={d}",
                        (b, h, t, d), causal, None),
        _multihead_case(b, t, h * d, h),
    ]
