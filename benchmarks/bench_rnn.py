"""The from-scratch LSTM cell unrolled in Python against torch.nn.LSTM (forward + backward)."""

from __future__ import annotations

import torch

from labutils.bench import Case, forward_backward
from labutils.rnn import cell_like, unroll


def _lstm_case(T: int, B: int, F: int, H: int) -> Case:
    torch.manual_seed(0)
    layer = torch.nn.LSTM(F, H)
    cell = cell_like(layer)
    x = torch.randn(T, B, F)

    return Case(
        name=f"LSTM unrolled fwd+bwd (T={T}, B={B}, F={F}, H={H})",
        ours=forward_backward(lambda s: unroll(cell, s)[0], x, wrt=list(cell.parameters())),
        reference=forward_backward(lambda s: layer(s)[0], x, wrt=list(layer.parameters())),
        note="labutils.rnn.LSTMCell in a Python loop vs torch.nn.LSTM, CPU, float32",
    )


def cases(quick: bool) -> list[Case]:
    """Quick: a tiny smoke size. Full: a 100-step sequence, batch 32, 64 inputs, 128 units."""
    return [_lstm_case(10, 4, 8, 16)] if quick else [_lstm_case(100, 32, 64, 128)]
