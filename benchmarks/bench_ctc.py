"""CTC loss, forward and backward: labutils.ctc.ctc_loss against torch's ctc_loss (CPU)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labutils.bench import Case, forward_backward
from labutils.ctc import ctc_loss


def _case(T: int, N: int, C: int, S: int, target: float | None) -> Case:
    gen = torch.Generator().manual_seed(0)
    log_probs = torch.randn(T, N, C, generator=gen).log_softmax(-1)
    targets = torch.randint(1, C, (N, S), generator=gen)
    input_lengths = torch.full((N,), T, dtype=torch.long)
    target_lengths = torch.randint(S // 2, S + 1, (N,), generator=gen)

    def run(loss_fn):
        return forward_backward(loss_fn, log_probs, targets, input_lengths, target_lengths)

    return Case(f"ctc_loss fwd+bwd T={T} N={N} C={C} S={S}", run(ctc_loss), run(F.ctc_loss),
                target=target, note="mean reduction, float32, CPU")


def cases(quick: bool) -> list[Case]:
    if quick:
        return [_case(20, 4, 6, 5, None)]
    return [_case(200, 32, 30, 40, 1.0), _case(100, 8, 30, 20, 3.0),
            _case(800, 64, 60, 150, None)]
