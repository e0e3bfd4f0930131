"""wav2vec 2.0, forward and backward: labutils.wav2vec's contrastive loss and Gumbel quantizer
against Hugging Face transformers' (a test extra; without it there is nothing to compare)."""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from labutils import wav2vec as w2v
from labutils.bench import Case


def _contrastive_case(hf, B: int, T: int, K: int, d: int, target: float | None) -> Case:
    gen = torch.Generator().manual_seed(0)
    c, q = torch.randn(B, T, d, generator=gen), torch.randn(B, T, d, generator=gen)
    mask = w2v.span_mask(torch.full((B,), T), T, 0.065, 10, min_spans=2, generator=gen)
    negatives = w2v.sample_negatives(mask, K, gen)

    def ours():
        c_, q_ = c.detach().requires_grad_(), q.detach().requires_grad_()
        loss, _ = w2v.contrastive_loss(w2v.contrastive_logits(c_, q_, negatives, mask, 0.1))
        loss.backward()
        return torch.cat([loss.detach().reshape(1), c_.grad.reshape(-1), q_.grad.reshape(-1)])

    def reference():  # transformers' route, as in Wav2Vec2ForPreTraining.forward
        c_, q_ = c.detach().requires_grad_(), q.detach().requires_grad_()
        neg = q_[torch.arange(B)[:, None, None], negatives].permute(2, 0, 1, 3)  # (K, B, T, d)
        logits = hf.Wav2Vec2ForPreTraining.compute_contrastive_logits(q_[None], neg, c_, 0.1)
        neg_is_pos = (q_ == neg).all(-1)
        if neg_is_pos.any():
            logits[1:][neg_is_pos] = float("-inf")
        logits = logits.permute(1, 2, 0)[mask]
        loss = F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long))
        loss.backward()
        return torch.cat([loss.detach().reshape(1), c_.grad.reshape(-1), q_.grad.reshape(-1)])

    return Case(f"contrastive loss fwd+bwd B={B} T={T} K={K} d={d}", ours, reference,
                target=target, note="cosine / kappa, mean over masked frames, CPU")


def _quantizer_case(hf, B: int, T: int, d_in: int, G: int, V: int, d: int,
                    target: float | None) -> Case:
    from transformers import Wav2Vec2Config

    config = Wav2Vec2Config(conv_dim=(d_in,), conv_stride=(5,), conv_kernel=(10,),
                            num_codevector_groups=G, num_codevectors_per_group=V,
                            codevector_dim=d)
    theirs = hf.Wav2Vec2GumbelVectorQuantizer(config).train()
    mine = w2v.GumbelQuantizer(d_in, d, G, V, tau=2.0).train()
    with torch.no_grad():  # built outside a model, transformers leaves codevectors unset
        theirs.codevectors.uniform_()
        mine.proj.weight.copy_(theirs.weight_proj.weight)
        mine.proj.bias.copy_(theirs.weight_proj.bias)
        mine.codebooks.copy_(theirs.codevectors.view(G, V, d // G))
    x = torch.randn(B, T, d_in, generator=torch.Generator().manual_seed(1))

    def run(module, take_q):
        def go():
            module.zero_grad(set_to_none=True)
            torch.manual_seed(0)  # the same Gumbel noise for both
            q = take_q(module(x))
            q.pow(2).sum().backward()
            weight = module.proj.weight if module is mine else module.weight_proj.weight
            return torch.cat([q.detach().reshape(-1), weight.grad.reshape(-1)])
        return go

    return Case(f"Gumbel quantizer fwd+bwd B={B} T={T} G={G} V={V}", run(mine, lambda o: o.q),
                run(theirs, lambda o: o[0]), target=target,
                note="straight-through, training mode, CPU")


def cases(quick: bool) -> list[Case]:
    try:
        from transformers.models.wav2vec2 import modeling_wav2vec2 as hf
    except ImportError:
        print("bench_wav2vec: transformers is not installed (pip install -c constraints.txt "
              "transformers); no reference to time against", file=sys.stderr)
        return []
    if quick:
        return [_contrastive_case(hf, 2, 50, 10, 16, None),
                _quantizer_case(hf, 2, 50, 32, 2, 20, 16, None)]
    return [_contrastive_case(hf, 8, 250, 100, 256, 2.0),
            _quantizer_case(hf, 8, 250, 512, 2, 320, 256, 2.0)]
