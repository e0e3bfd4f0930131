"""labutils.wav2vec against hand-computed cases, closed forms, brute force, and Hugging Face
transformers' wav2vec 2.0 functions (an optional test dependency: `make test` installs
it; the tests that need it are skipped, saying so, where it is absent)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labutils import wav2vec as w2v
from labutils.data import vowels

try:
    from transformers import Wav2Vec2Config
    from transformers.models.wav2vec2 import modeling_wav2vec2 as hf
except ImportError:  # an optional test dependency
    hf = None
needs_hf = pytest.mark.skipif(hf is None, reason="transformers is not installed (optional "
                              "test dependency: pip install -c constraints.txt transformers)")


def _logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


# ------------------------------------------------------------------------ wav2vec (2019)


def test_step_loss_hand_computed_tiny_case():
    """T = 4, d = 2, k = 1, two fixed distractors per step, lam = 2, written out."""
    z = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]]], dtype=torch.float64)
    hc = torch.tensor([[[0.5, -1.0], [2.0, 0.0], [0.0, 1.5], [9.0, 9.0]]], dtype=torch.float64)
    distractors = torch.tensor([[[0, 3], [1, 0], [2, 1]]])  # for i = 0, 1, 2 (positives 1, 2, 3)
    # by hand: i=0: z1.h0 = -1; z0.h0 = 0.5, z3.h0 = -1
    #          i=1: z2.h1 = 2;  z1.h1 = 0,   z0.h1 = 2
    #          i=2: z3.h2 = 0.75; z2.h2 = 1.5, z1.h2 = 1.5
    pos = [-1.0, 2.0, 0.75]
    neg = [[0.5, -1.0], [0.0, 2.0], [1.5, 1.5]]
    expected = -sum(_logsig(p) + 2 * (_logsig(-a) + _logsig(-b)) / 2
                    for p, (a, b) in zip(pos, neg, strict=True))
    got = w2v.wav2vec_step_loss(z, hc, 1, distractors)
    assert math.isclose(got.item(), expected, rel_tol=1e-12)
    # lam weights the expectation only
    got_half = w2v.wav2vec_step_loss(z, hc, 1, distractors, lam=1.0)
    expected_half = -sum(_logsig(p) + (_logsig(-a) + _logsig(-b)) / 2
                         for p, (a, b) in zip(pos, neg, strict=True))
    assert math.isclose(got_half.item(), expected_half, rel_tol=1e-12)


def test_step_loss_matches_binary_cross_entropy():
    gen = torch.Generator().manual_seed(0)
    b, t, d, k, n = 3, 9, 5, 2, 4
    z, hc = torch.randn(b, t, d, generator=gen), torch.randn(b, t, d, generator=gen)
    idx = w2v.uniform_distractors(b, t, k, n, gen)
    pos = torch.einsum("bid,bid->bi", z[:, k:], hc[:, :t - k])
    neg = torch.stack([torch.stack([torch.stack([z[i, idx[i, j, m]] @ hc[i, j]
                                                 for m in range(n)]) for j in range(t - k)])
                       for i in range(b)])
    bce = F.binary_cross_entropy_with_logits
    expected = (bce(pos, torch.ones_like(pos), reduction="sum")
                + bce(neg, torch.zeros_like(neg), reduction="sum")) / b
    torch.testing.assert_close(w2v.wav2vec_step_loss(z, hc, k, idx), expected)


def test_uniform_distractors_never_the_positive_and_uniform():
    gen = torch.Generator().manual_seed(1)
    t, k = 6, 2
    idx = w2v.uniform_distractors(400, t, k, 50, gen)
    assert idx.shape == (400, t - k, 50)
    for i in range(t - k):
        counts = torch.bincount(idx[:, i].reshape(-1), minlength=t).double()
        assert counts[i + k] == 0, "a distractor equal to the positive"
        others = counts[torch.arange(t) != i + k] / counts.sum()
        torch.testing.assert_close(others, torch.full((t - 1,), 1 / (t - 1),
                                                      dtype=torch.float64), atol=0.01, rtol=0)
    with pytest.raises(ValueError, match="step k"):
        w2v.uniform_distractors(1, 4, 4, 2)


def test_wav2vec_loss_sums_the_steps_with_their_transforms():
    torch.manual_seed(0)
    steps = w2v.StepTransforms(3, 4, steps=3)
    z, c = torch.randn(2, 8, 4), torch.randn(2, 8, 3)
    hc = steps(c)
    assert hc.shape == (3, 2, 8, 4)
    torch.testing.assert_close(hc[2], c @ steps.maps[2].weight.T + steps.maps[2].bias)
    loss = w2v.wav2vec_loss(z, c, steps, 5, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    expected = sum(w2v.wav2vec_step_loss(z, hc[k - 1], k, w2v.uniform_distractors(2, 8, k, 5, gen))
                   for k in (1, 2, 3))
    torch.testing.assert_close(loss, expected)


# ------------------------------------------------------------------------ masking


def test_span_mask_spans_lie_inside_each_sequence_and_padding_moves_nothing():
    lengths = torch.tensor([50, 23, 9, 40])
    m1 = w2v.span_mask(lengths, 50, p=0.1, span=5, generator=torch.Generator().manual_seed(0))
    m2 = w2v.span_mask(lengths, 80, p=0.1, span=5, generator=torch.Generator().manual_seed(0))
    assert m1.shape == (4, 50) and m2.shape == (4, 80)
    assert torch.equal(m2[:, :50], m1) and not m2[:, 50:].any()
    beyond = torch.arange(50)[None] >= lengths[:, None]
    assert not m1[beyond].any()
    # every run of masked frames is a union of whole spans: at least `span` long
    for row in m1:
        runs = [len(list(g)) for v, g in itertools.groupby(row.tolist()) if v]
        assert all(r >= 5 for r in runs)


def test_span_mask_errors():
    with pytest.raises(ValueError, match="lengths"):
        w2v.span_mask([10, 30], 20)
    with pytest.raises(ValueError, match="p must"):
        w2v.span_mask([10], 10, p=1.5)


def _brute_force_fraction(length: int, p: float, span: int) -> float:
    """Average over every set of starts of each possible n, weighted as span_mask draws."""
    places = length - span + 1
    low, frac = int(p * length), p * length - int(p * length)
    total = 0.0
    for n, weight in ((low, 1 - frac), (low + 1, frac)):
        n = min(n, places)
        subsets = list(itertools.combinations(range(places), n))
        covered = [len({s + j for s in starts for j in range(span)}) for starts in subsets]
        total += weight * sum(covered) / len(subsets) / length
    return total


@pytest.mark.parametrize("length,p,span", [(12, 0.2, 3), (15, 0.065, 10), (10, 0.35, 2),
                                           (9, 0.1, 9)])
def test_expected_mask_fraction_equals_brute_force(length, p, span):
    assert math.isclose(w2v.expected_mask_fraction(length, p, span),
                        _brute_force_fraction(length, p, span), rel_tol=1e-12)


def test_expected_mask_fraction_matches_sampling_and_the_long_sequence_limit():
    gen = torch.Generator().manual_seed(2)
    mask = w2v.span_mask(torch.full((4000,), 100), 100, 0.065, 10, generator=gen)
    assert abs(mask.float().mean().item() - w2v.expected_mask_fraction(100, 0.065, 10)) < 0.005
    assert abs(w2v.expected_mask_fraction(20000, 0.065, 10) - (1 - 0.935**10)) < 2e-3


# ------------------------------------------------------------------------ quantizer


def test_perplexity_and_diversity_closed_forms():
    g, v = 2, 8
    uniform = torch.full((3, 5, g, v), 1 / v)
    assert math.isclose(w2v.codebook_perplexity(uniform).item(), g * v, rel_tol=1e-6)
    assert abs(w2v.diversity_loss(w2v.codebook_perplexity(uniform), g, v).item()) < 1e-6
    one = F.one_hot(torch.full((3, 5, g), 4), v).float()
    assert math.isclose(w2v.codebook_perplexity(one).item(), g, rel_tol=1e-6)
    # two entries used half the time each in group 0, one entry in group 1: 2 + 1
    codes = torch.tensor([[[0, 1], [3, 1]]])
    assert math.isclose(w2v.codebook_perplexity(F.one_hot(codes, v).float()).item(), 3.0,
                        rel_tol=1e-6)
    mask = torch.tensor([[True, False]])
    assert math.isclose(w2v.codebook_perplexity(F.one_hot(codes, v).float(), mask).item(), 2.0,
                        rel_tol=1e-6)


def test_quantizer_picks_gumbel_argmax_and_passes_gradients_straight_through():
    torch.manual_seed(0)
    quant = w2v.GumbelQuantizer(6, 8, groups=2, entries=5, tau=0.7)
    x = torch.randn(2, 3, 6)
    torch.manual_seed(11)
    out = quant(x)
    torch.manual_seed(11)  # the same Gumbel noise, drawn the way F.gumbel_softmax does
    logits = quant.proj(x).view(2, 3, 2, 5)
    gumbel = -torch.empty_like(logits).exponential_().log()
    assert torch.equal(out.codes, (logits + gumbel).argmax(-1))
    expected_q = torch.cat([quant.codebooks[gi, out.codes[..., gi]] for gi in range(2)], -1)
    torch.testing.assert_close(out.q, expected_q)
    # straight-through: the backward pass is the soft sample's
    soft = ((logits + gumbel) / 0.7).softmax(-1)
    weights = torch.randn(2, 3, 8)
    (g_ours,) = torch.autograd.grad((out.q * weights).sum(), quant.proj.weight)
    soft_q = torch.einsum("btgv,gvd->btgd", soft, quant.codebooks).reshape(2, 3, 8)
    (g_soft,) = torch.autograd.grad((soft_q * weights).sum(), quant.proj.weight)
    torch.testing.assert_close(g_ours, g_soft)
    quant.eval()
    assert torch.equal(quant(x).codes, logits.argmax(-1))


def test_gumbel_temperature_anneals_to_its_floor():
    assert w2v.gumbel_temperature(0) == 2.0
    assert math.isclose(w2v.gumbel_temperature(1000), 2.0 * 0.999995**1000)
    floor_at = math.log(0.25) / math.log(0.999995)  # 2 * decay^u = 0.5
    assert w2v.gumbel_temperature(int(floor_at) - 10) > 0.5
    assert w2v.gumbel_temperature(int(floor_at) + 10) == 0.5


# ------------------------------------------------------------------------ negatives, loss


def test_negatives_are_other_masked_frames_of_the_same_sequence_uniformly():
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[0, 2:6] = True
    mask[1, [0, 5, 11]] = True
    idx = w2v.sample_negatives(mask, 3000, torch.Generator().manual_seed(0))
    assert idx.shape == (3, 12, 3000)
    for b, t in mask.nonzero().tolist():
        others = [s for s in mask[b].nonzero().flatten().tolist() if s != t]
        counts = torch.bincount(idx[b, t], minlength=12).double() / 3000
        assert set(idx[b, t].tolist()) == set(others)
        uniform = torch.full((len(others),), 1 / len(others), dtype=torch.float64)
        torch.testing.assert_close(counts[others], uniform, atol=0.03, rtol=0)
    assert torch.equal(idx[2], torch.arange(12)[:, None].expand(12, 3000))  # no masked frame
    with pytest.raises(ValueError, match="one masked frame"):
        w2v.sample_negatives(torch.tensor([[True, False]]), 2)


def test_contrastive_logits_and_loss_by_brute_force():
    gen = torch.Generator().manual_seed(4)
    b, t, d, k = 2, 7, 5, 4
    c, q = torch.randn(b, t, d, generator=gen), torch.randn(b, t, d, generator=gen)
    q[1, 3] = q[1, 5]  # two identical targets: each is then a "distractor equal to the positive"
    mask = torch.zeros(b, t, dtype=torch.bool)
    mask[0, 1:4] = True
    mask[1, [2, 3, 5]] = True
    neg = w2v.sample_negatives(mask, k, gen)
    logits = w2v.contrastive_logits(c, q, neg, mask, kappa=0.1)
    rows = []
    for bi, ti in mask.nonzero().tolist():
        cands = [q[bi, ti]] + [q[bi, s] for s in neg[bi, ti].tolist()]
        row = [float(c[bi, ti] @ v / (c[bi, ti].norm() * v.norm())) / 0.1 for v in cands]
        row = row[:1] + [-math.inf if torch.equal(v, cands[0]) else r
                         for v, r in zip(cands[1:], row[1:], strict=True)]
        rows.append(row)
    expected = torch.tensor(rows)
    assert torch.isinf(expected).any(), "the case should contain a distractor equal to the positive"
    torch.testing.assert_close(logits, expected)
    loss, accuracy = w2v.contrastive_loss(logits)
    manual = -torch.tensor([r[0] - torch.logsumexp(torch.tensor(r), 0) for r in rows]).mean()
    torch.testing.assert_close(loss, manual)
    assert math.isclose(accuracy.item(), np.mean([max(r) == r[0] for r in rows]), rel_tol=1e-6)


# ------------------------------------------------------------------------ the model


def test_feature_encoder_total_stride_and_receptive_field():
    for n in [400, 719, 720, 16000, 32123]:
        assert w2v.n_frames(n) == (n - 400) // 320 + 1
    assert w2v.n_frames(399) == 0
    enc = w2v.FeatureEncoder(8)
    assert enc(torch.randn(2, 16000)).shape == (2, 49, 8)
    with pytest.raises(ValueError, match="fewer than"):
        enc(torch.randn(1, 300))


def test_context_ignores_padding_and_uses_the_mask_embedding():
    torch.manual_seed(0)
    model = w2v.Wav2Vec2(channels=8, d_model=16, n_heads=2, n_layers=2, d_ff=32,
                         final_dim=8, entries=6, dropout=0.0).eval()
    feats = torch.randn(2, 20, 8)
    lengths = torch.tensor([20, 13])
    padded = feats.clone()
    padded[1, 13:] = 100.0
    a = model.context(feats, lengths=lengths)
    b = model.context(padded, lengths=lengths)
    torch.testing.assert_close(a[1, :13], b[1, :13])
    alone = model.context(feats[1:, :13])
    torch.testing.assert_close(a[1, :13], alone[0])
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[0, 4:9] = True
    other = feats.clone()
    other[0, 4:9] = -7.0  # masked frames: their features are never seen
    torch.testing.assert_close(model.context(feats, mask), model.context(other, mask))


def _tiny_pretraining_batch():
    """A tiny wav2vec 2.0 (2 groups of 6 entries), 3 random waves of 4000 samples, a mask."""
    torch.manual_seed(0)
    model = w2v.Wav2Vec2(channels=8, d_model=16, n_heads=2, n_layers=1, d_ff=32, final_dim=8,
                         entries=6)
    t = w2v.n_frames(4000)
    return model, torch.randn(3, 4000), w2v.span_mask(torch.full((3,), t), t, 0.065, 3,
                                                      min_spans=2)


def test_pretraining_loss_terms_and_gradients():
    model, wave, mask = _tiny_pretraining_batch()
    out = w2v.pretraining_loss(model, wave, mask, n_negatives=5, alpha=0.1, feature_penalty=10.0)
    terms = out["contrastive"] + 0.1 * out["diversity"] + 10.0 * out["penalty"]
    torch.testing.assert_close(out["loss"].detach(), terms)
    assert 2 <= out["perplexity"].item() <= 12 and 0 <= out["accuracy"].item() <= 1
    out["loss"].backward()
    assert model.quantizer.proj.weight.grad.abs().sum() > 0
    assert model.encoder.conv[0].weight.grad.abs().sum() > 0


def test_quantizer_confidence_from_flat_to_sure():
    model, wave, mask = _tiny_pretraining_batch()
    with torch.no_grad():
        model.quantizer.proj.weight.zero_()       # equal logits: a flat softmax, 1 / V
        model.quantizer.proj.bias.zero_()
    out = w2v.pretraining_loss(model, wave, mask, n_negatives=5)
    assert abs(out["confidence"].item() - 1 / 6) < 1e-6
    with torch.no_grad():                         # entry 2 of each group far ahead: sure
        model.quantizer.proj.bias.view(2, 6)[:, 2] = 50.0
    out = w2v.pretraining_loss(model, wave, mask, n_negatives=5)
    assert abs(out["confidence"].item() - 1.0) < 1e-6
    with torch.no_grad():                         # two entries tied ahead: exactly one half
        model.quantizer.proj.bias.view(2, 6)[:, 4] = 50.0
    out = w2v.pretraining_loss(model, wave, mask, n_negatives=5)
    assert abs(out["confidence"].item() - 0.5) < 1e-6


# ------------------------------------------------------------------------ data


def test_vowel_frames_follow_the_syllables():
    data = vowels.make_utterances(3, seconds=1.0, seed=5)
    assert data.waves.shape == (3, 16000)
    assert data.frame_labels.shape == (3, w2v.n_frames(16000))
    torch.testing.assert_close(data.waves.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    labels = data.frame_labels
    assert set(labels.unique().tolist()) <= set(range(len(vowels.LABELS)))
    assert (labels == 0).any() and (labels > 0).float().mean() > 0.4
    energy = data.waves.unfold(1, 400, 320).pow(2).mean(-1)  # (n, T)
    assert energy[labels > 0].median() > 5 * energy[labels == 0].median()
    again = vowels.make_utterances(3, seconds=1.0, seed=5)
    assert torch.equal(again.waves, data.waves)


# ------------------------------------------------------------------ transformers, optional


def _hf_config(**kw):
    return Wav2Vec2Config(conv_dim=(8,), conv_stride=(5,), conv_kernel=(10,), hidden_size=16,
                          num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                          **kw)


@needs_hf
def test_mask_fraction_matches_transformers():
    """transformers' mask_prob is p * span (spans = mask_prob L / span); same expectation."""
    np.random.seed(0)
    lengths = [100, 100, 73, 40]
    attention = torch.tensor([[1] * n + [0] * (100 - n) for n in lengths])
    theirs = np.stack([hf._compute_mask_indices((4, 100), 0.65, 10, attention)
                       for _ in range(1500)])
    ours = torch.stack([w2v.span_mask(lengths, 100, 0.065, 10,
                                      generator=torch.Generator().manual_seed(i))
                        for i in range(1500)]).numpy()
    for row, n in enumerate(lengths):
        assert not theirs[:, row, n:].any() and not ours[:, row, n:].any()
        expected = w2v.expected_mask_fraction(n, 0.065, 10)
        for name, masks in (("transformers", theirs), ("ours", ours)):
            got = masks[:, row, :n].mean()
            assert abs(got - expected) < 0.015, f"{name}, length {n}: {got:.3f} vs {expected:.3f}"


@needs_hf
def test_quantizer_matches_transformers():
    config = _hf_config(num_codevector_groups=2, num_codevectors_per_group=7, codevector_dim=6)
    theirs = hf.Wav2Vec2GumbelVectorQuantizer(config)
    ours = w2v.GumbelQuantizer(8, 6, groups=2, entries=7, tau=1.3)
    theirs.temperature = 1.3
    with torch.no_grad():  # built outside a model, transformers leaves codevectors unset
        theirs.codevectors.uniform_()
        ours.proj.weight.copy_(theirs.weight_proj.weight)
        ours.proj.bias.copy_(theirs.weight_proj.bias)
        ours.codebooks.copy_(theirs.codevectors.view(2, 7, 3))
    x = torch.randn(3, 5, 8)
    mask = torch.rand(3, 5) < 0.6
    for training in (True, False):
        ours.train(training)
        theirs.train(training)
        torch.manual_seed(7)
        q_theirs, ppl_theirs = theirs(x, mask)
        torch.manual_seed(7)
        out = ours(x)
        torch.testing.assert_close(out.q, q_theirs)
        # transformers: the soft distribution in training, the hard codes in evaluation
        probs = out.probs if training else F.one_hot(out.codes, 7).float()
        torch.testing.assert_close(w2v.codebook_perplexity(probs, mask), ppl_theirs,
                                   rtol=1e-4, atol=1e-4)


@needs_hf
def test_negatives_match_transformers_contract():
    mask = np.zeros((2, 30), dtype=bool)
    mask[0, 3:13] = True
    mask[1, [1, 2, 3, 20, 21, 22, 23]] = True
    np.random.seed(0)
    theirs = hf._sample_negative_indices((2, 30), 2000, mask)          # flat indices into B*T
    ours = w2v.sample_negatives(torch.from_numpy(mask), 2000, torch.Generator().manual_seed(0))
    for b, t in zip(*mask.nonzero(), strict=True):
        allowed = set(mask[b].nonzero()[0].tolist()) - {t}
        their_t = theirs[b, t] - b * 30
        assert set(their_t.tolist()) == allowed == set(ours[b, t].tolist())
        f_theirs = np.bincount(their_t, minlength=30)[sorted(allowed)] / 2000
        f_ours = np.bincount(ours[b, t].numpy(), minlength=30)[sorted(allowed)] / 2000
        assert np.abs(f_theirs - f_ours).max() < 0.05


@needs_hf
def test_contrastive_logits_match_transformers():
    gen = torch.Generator().manual_seed(1)
    b, t, d, k = 2, 9, 6, 5
    c, q = torch.randn(b, t, d, generator=gen), torch.randn(b, t, d, generator=gen)
    q[0, 4] = q[0, 2]
    mask = torch.zeros(b, t, dtype=torch.bool)
    mask[0, 1:6] = True
    mask[1, 3:8] = True
    neg = w2v.sample_negatives(mask, k, gen)
    ours = w2v.contrastive_logits(c, q, neg, mask, kappa=0.1)
    # transformers' route: (K, B, T, d) negatives, its logits, then neg == pos set to -inf
    negatives = q[torch.arange(b)[:, None, None], neg].permute(2, 0, 1, 3)
    logits = hf.Wav2Vec2ForPreTraining.compute_contrastive_logits(q[None], negatives, c, 0.1)
    neg_is_pos = (q == negatives).all(-1)
    logits[1:][neg_is_pos] = float("-inf")
    theirs = logits.permute(1, 2, 0)[mask]
    torch.testing.assert_close(ours, theirs)
    loss, _ = w2v.contrastive_loss(ours)
    target = torch.zeros(int(mask.sum()), dtype=torch.long)
    torch.testing.assert_close(loss, F.cross_entropy(theirs, target))


# ------------------------------------------------------------------ the explorer


def test_explorer_draw_shows_masks_and_code_usage():
    import matplotlib.pyplot as plt

    from labutils.plotting import draw_wav2vec_explorer

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 40, generator=gen) * 2
    gumbel = -torch.log(-torch.log(torch.rand(300, 40, generator=gen)))
    kw = dict(lengths=[99, 60, 30, 12] * 10, logits=logits, gumbel=gumbel,
              expected=w2v.expected_mask_fraction)
    shown = {}
    for p, span, tau in [(0.0, 10, 2.0), (0.065, 10, 0.1), (0.065, 10, 4.0), (0.2, 3, 1.0)]:
        fig = plt.figure()
        shown[(p, span, tau)] = draw_wav2vec_explorer(fig, p, span, tau, **kw)
        assert len(fig.axes) == 2 and fig.axes[0].get_title().startswith(f"p = {p:.3f}")
        plt.close(fig)
    assert shown[(0.0, 10, 2.0)]["fraction"] == 0 == shown[(0.0, 10, 2.0)]["expected"]
    for numbers in shown.values():
        assert abs(numbers["fraction"] - numbers["expected"]) < 0.1
    cold, hot = shown[(0.065, 10, 0.1)], shown[(0.065, 10, 4.0)]
    assert cold["hard_perplexity"] == hot["hard_perplexity"]  # arg max(l + n) ignores tau
    assert cold["per_frame_perplexity"] < 1.5 < 10 < hot["per_frame_perplexity"]
    hard = torch.bincount((logits + gumbel).argmax(-1), minlength=40).double() / 300
    assert math.isclose(cold["hard_perplexity"], float(torch.exp(-torch.xlogy(hard, hard).sum())),
                        rel_tol=1e-9)
