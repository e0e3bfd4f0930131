"""labutils.ctc against torch's ctc_loss, brute-force enumeration and hand-worked cases."""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from labutils import ctc

REDUCTIONS = ["none", "sum", "mean"]


def _both(logits, targets, input_lengths, target_lengths, **kw):
    """Loss and gradient w.r.t. the logits (through log_softmax) for ours and torch's."""
    out = []
    for fn in (ctc.ctc_loss, F.ctc_loss):
        x = logits.detach().clone().requires_grad_()
        loss = fn(x.log_softmax(-1), targets, input_lengths, target_lengths, **kw)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        out.append((loss.detach(), grad))
    return out


def _assert_match(logits, targets, input_lengths, target_lengths, **kw):
    (ours, g_ours), (ref, g_ref) = _both(logits, targets, input_lengths, target_lengths, **kw)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10, equal_nan=True)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-10, equal_nan=True)


@st.composite
def ctc_problems(draw):
    T = draw(st.integers(1, 12))
    N = draw(st.integers(1, 4))
    C = draw(st.integers(2, 6))
    S = draw(st.integers(0, 5))
    blank = draw(st.integers(0, C - 1))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, N, C, generator=gen, dtype=torch.float64) * 2
    labels = [c for c in range(C) if c != blank]
    targets = torch.tensor(labels)[torch.randint(len(labels), (N, S), generator=gen)]
    target_lengths = torch.randint(0, S + 1, (N,), generator=gen)
    input_lengths = torch.randint(0, T + 1, (N,), generator=gen)
    input_lengths[0] = T  # torch needs one full-length sequence in the batch
    return logits, targets, input_lengths, target_lengths, blank


@settings(max_examples=60, deadline=None)
@given(ctc_problems(), st.sampled_from(REDUCTIONS), st.booleans())
def test_loss_and_gradient_match_torch(problem, reduction, zero_infinity):
    logits, targets, input_lengths, target_lengths, blank = problem
    _assert_match(logits, targets, input_lengths, target_lengths, blank=blank,
                  reduction=reduction, zero_infinity=zero_infinity)


@settings(max_examples=30, deadline=None)
@given(ctc_problems(), st.sampled_from(REDUCTIONS))
def test_concatenated_targets_match_padded(problem, reduction):
    logits, targets, input_lengths, target_lengths, blank = problem
    flat = torch.cat([t[:n] for t, n in zip(targets, target_lengths, strict=True)])
    _assert_match(logits, flat, input_lengths, target_lengths, blank=blank,
                  reduction=reduction, zero_infinity=True)
    torch.testing.assert_close(
        ctc.ctc_loss(logits.log_softmax(-1), flat, input_lengths, target_lengths,
                     blank=blank, reduction=reduction, zero_infinity=True),
        ctc.ctc_loss(logits.log_softmax(-1), targets, input_lengths, target_lengths,
                     blank=blank, reduction=reduction, zero_infinity=True))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_edge_cases_match_torch(reduction, zero_infinity):
    """Repeats that need a blank, empty targets, the minimum length, impossible ones."""
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 7, 4, generator=gen, dtype=torch.float64)
    targets = torch.tensor([[1, 1, 2], [1, 1, 0], [2, 3, 0], [0, 0, 0], [1, 1, 1],
                            [3, 0, 0], [1, 2, 1]])
    target_lengths = torch.tensor([3, 2, 2, 0, 3, 1, 3])
    # 1 1 2 needs 4 frames (a blank between the 1s): 4 is the minimum; 1 1 needs 3 > 2;
    # 1 1 1 needs 5; a single label needs one frame; an empty target fits in any length
    input_lengths = torch.tensor([4, 2, 6, 3, 5, 1, 6])
    _assert_match(logits, targets, input_lengths, target_lengths, reduction=reduction,
                  zero_infinity=zero_infinity)
    losses = ctc.ctc_loss(logits.log_softmax(-1), targets, input_lengths, target_lengths,
                          reduction="none", zero_infinity=zero_infinity)
    assert torch.isfinite(losses).tolist() == [True, zero_infinity, True, True, True,
                                              True, True]


def test_empty_target_is_all_blanks():
    log_probs = torch.randn(5, 1, 3, dtype=torch.float64).log_softmax(-1)
    loss = ctc.ctc_loss(log_probs, torch.zeros(1, 0, dtype=torch.long), [5], [0],
                        reduction="sum")
    torch.testing.assert_close(loss, -log_probs[:, 0, 0].sum())


def test_float32_and_unbatched_input():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(30, 5, 8, generator=gen)
    targets = torch.randint(1, 8, (5, 10), generator=gen)
    lengths = ([30, 25, 30, 20, 12], [10, 7, 3, 9, 4])
    for reduction in REDUCTIONS:
        (ours, g_ours), (ref, g_ref) = _both(logits, targets, *lengths, reduction=reduction)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-5)
    lp = logits[:, 0].log_softmax(-1)
    torch.testing.assert_close(
        ctc.ctc_loss(lp, targets[0], 30, 10, reduction="none"),
        F.ctc_loss(lp, targets[0], torch.tensor(30), torch.tensor(10), reduction="none"))


def test_nonzero_blank():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(9, 3, 5, generator=gen, dtype=torch.float64)
    targets = torch.randint(0, 4, (3, 4), generator=gen)  # the blank is class 4
    _assert_match(logits, targets, [9, 8, 9], [4, 2, 3], blank=4)


def test_bad_input_is_refused():
    lp = torch.randn(5, 2, 4).log_softmax(-1)
    targets = torch.tensor([[1, 2], [3, 1]])
    with pytest.raises(ValueError, match="blank"):
        ctc.ctc_loss(lp, torch.tensor([[0, 2], [3, 1]]), [5, 5], [2, 2])
    with pytest.raises(ValueError, match="at most T"):
        ctc.ctc_loss(lp, targets, [6, 5], [2, 2])
    with pytest.raises(ValueError, match="reduction"):
        ctc.ctc_loss(lp, targets, [5, 5], [2, 2], reduction="avg")
    with pytest.raises(ValueError, match="columns"):
        ctc.ctc_loss(lp, targets, [5, 5], [3, 2])
    with pytest.raises(ValueError, match="add up"):
        ctc.ctc_loss(lp, torch.tensor([1, 2, 3]), [5, 5], [2, 2])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        ctc.ctc_loss(lp, torch.tensor([[1, 7], [3, 1]]), [5, 5], [2, 2])
    with pytest.raises(ValueError, match="one per sequence"):
        ctc.ctc_loss(lp, targets, [5], [2, 2])


def test_float_lengths_are_refused_as_torch_refuses_them():
    lp = torch.randn(5, 2, 4).log_softmax(-1)
    targets = torch.tensor([[1, 2], [3, 1]])
    with pytest.raises(RuntimeError):
        F.ctc_loss(lp, targets, torch.tensor([4.7, 5.0]), torch.tensor([2, 2]))
    with pytest.raises(TypeError, match="input_lengths must hold integers"):
        ctc.ctc_loss(lp, targets, torch.tensor([4.7, 5.0]), [2, 2])
    with pytest.raises(TypeError, match="target_lengths must hold integers"):
        ctc.ctc_loss(lp, targets, [5, 5], [2.0, 2.0])


def test_no_frames_is_a_clear_error():
    with pytest.raises(ValueError, match="T = 0 frames"):
        ctc.ctc_loss(torch.zeros(0, 2, 4), torch.tensor([[1], [2]]), [0, 0], [1, 1])


def test_gradient_against_finite_differences_of_the_logits():
    """Through log_softmax torch's convention is the true gradient: check it numerically."""
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(7, 2, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[1, 1, 3], [2, 3, 0]])
    assert torch.autograd.gradcheck(
        lambda x: ctc.ctc_loss(x.log_softmax(-1), targets, [7, 6], [3, 2]), (logits,))


# ------------------------------------------------------------------ the lattice


def test_alpha_beta_lattice_and_brute_force():
    gen = torch.Generator().manual_seed(5)
    lp = torch.randn(6, 3, generator=gen, dtype=torch.float64).log_softmax(-1)
    target = [1, 1, 2]
    alpha, beta, nll = ctc.ctc_alpha_beta(lp, torch.tensor(target), 6, 3)
    assert alpha.shape == beta.shape == (6, 7)
    # the path mass through every frame adds up to p(l | x)
    torch.testing.assert_close(torch.logsumexp(alpha + beta, 1), (-nll).expand(6))
    brute = ctc.label_sequence_log_probs(lp)
    assert math.isclose(brute[tuple(target)], -nll.item(), rel_tol=1e-12)
    every = torch.tensor(list(brute.values()), dtype=torch.float64)
    torch.testing.assert_close(torch.logsumexp(every, 0), torch.tensor(0.0, dtype=every.dtype))
    torch.testing.assert_close(
        nll, F.ctc_loss(lp, torch.tensor(target), torch.tensor(6), torch.tensor(3),
                        reduction="sum"))
    # the first frame can only be the leading blank or the first label
    assert torch.isinf(alpha[0, 2:]).all() and torch.isfinite(alpha[0, :2]).all()


# ------------------------------------------------------------------ decoding


def test_collapse():
    assert ctc.collapse([1, 1, 0, 1, 2, 2, 0, 0]) == [1, 1, 2]
    assert ctc.collapse([0, 0]) == []
    assert ctc.collapse([2, 2, 1], blank=2) == [1]


def test_greedy_decode_by_hand():
    probs = torch.tensor([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.9, 0.05, 0.05],
                          [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    lp = torch.stack([probs, probs.flip(1)], 1).log()
    seqs, scores = ctc.greedy_decode(lp, [5, 3])
    assert seqs == [[1, 1, 2], [1, 2]]  # the flipped one: 1, 1, 2 in its 3 frames
    torch.testing.assert_close(scores[0], torch.log(torch.tensor(0.8 * 0.7 * 0.9 * 0.8 * 0.8)))
    assert ctc.greedy_decode(lp[:, 0])[0] == [[1, 1, 2]]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(2, 4), st.integers(0, 2**16))
def test_full_beam_is_exact(T, C, seed):
    """With a beam that keeps every prefix, the scores are the exact probabilities."""
    gen = torch.Generator().manual_seed(seed)
    lp = (torch.randn(T, C, generator=gen, dtype=torch.float64) * 2).log_softmax(-1)
    brute = ctc.label_sequence_log_probs(lp)
    beam = ctc.prefix_beam_search(lp, beam_size=C**T)
    assert len(beam) == len(brute)
    for labels, score in beam:
        assert math.isclose(score, brute[tuple(labels)], rel_tol=1e-9, abs_tol=1e-12)
    assert tuple(beam[0][0]) == max(brute, key=brute.get)
    scores = [s for _, s in beam]
    assert scores == sorted(scores, reverse=True)


def test_beam_search_beats_greedy():
    """Two frames: the best single path is blank-blank (0.36), but the label sequence
    '1' collects three paths, 1-blank, blank-1 and 1-1 (0.24 + 0.24 + 0.16 = 0.64)."""
    probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64)
    lp = probs.log()
    assert ctc.greedy_decode(lp)[0] == [[]]
    best, score = ctc.prefix_beam_search(lp, beam_size=2)[0]
    assert best == [1]
    assert math.isclose(math.exp(score), 0.4 * 0.4 + 0.4 * 0.6 + 0.6 * 0.4)


def test_narrow_beam_can_miss_the_best_labelling():
    """A hand case where beam 2 prunes the ancestors of the most probable labelling."""
    probs = torch.tensor([[.5, .4, .1], [.5, .1, .4], [.5, .4, .1], [.5, .1, .4]],
                         dtype=torch.float64)
    brute = ctc.label_sequence_log_probs(probs.log())
    best = max(brute, key=brute.get)
    narrow = ctc.prefix_beam_search(probs.log(), beam_size=2)[0][0]
    assert tuple(narrow) != best
    assert tuple(ctc.prefix_beam_search(probs.log(), beam_size=3**4)[0][0]) == best


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(2, 4), st.integers(1, 3), st.integers(0, 2**16))
def test_beam_score_is_a_lower_bound(T, C, beam, seed):
    gen = torch.Generator().manual_seed(seed)
    lp = (torch.randn(T, C, generator=gen, dtype=torch.float64) * 2).log_softmax(-1)
    brute = ctc.label_sequence_log_probs(lp)
    for labels, score in ctc.prefix_beam_search(lp, beam_size=beam):
        assert score <= brute[tuple(labels)] + 1e-12


def _brute_prefix_split(lp, blank=0):
    """Every path of one sequence's log_probs (t, C), summed by (labelling, last output is
    blank): the quantities p_b and p_nb of prefix beam search, by enumeration."""
    T, C = lp.shape
    out = {}
    for path in itertools.product(range(C), repeat=T):
        key = (tuple(ctc.collapse(path, blank)), path[-1] == blank)
        out[key] = out.get(key, 0.0) + math.exp(sum(lp[t, k] for t, k in enumerate(path)))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_prefix_beam_step_against_enumeration(seed):
    gen = torch.Generator().manual_seed(seed)
    lp = (torch.randn(4, 3, generator=gen, dtype=torch.float64) * 2).log_softmax(-1).numpy()
    beams = {(): (0.0, -math.inf)}
    for t in range(lp.shape[0]):
        beams = ctc.prefix_beam_step(beams, lp[t])  # no pruning: every prefix is kept
        brute = _brute_prefix_split(lp[: t + 1])
        for prefix, (pb, pnb) in beams.items():
            assert math.isclose(math.exp(pb), brute.get((prefix, True), 0.0), abs_tol=1e-12)
            assert math.isclose(math.exp(pnb), brute.get((prefix, False), 0.0), abs_tol=1e-12)
        assert {p for p, _ in brute} <= set(beams)


def _brute_viterbi(lp, target, blank=0):
    """The best path that collapses to ``target``, by enumerating all C^T paths."""
    T, C = lp.shape
    paths = [p for p in itertools.product(range(C), repeat=T)
             if ctc.collapse(p, blank) == list(target)]
    best = max(paths, key=lambda p: sum(lp[t, k] for t, k in enumerate(p)))
    return list(best), sum(lp[t, k] for t, k in enumerate(best))


@pytest.mark.parametrize("target", [[1, 2], [1, 1], [2], [], [1, 2, 1], [2, 2, 2]])
@pytest.mark.parametrize("seed", range(3))
def test_viterbi_align_against_brute_force(target, seed):
    gen = torch.Generator().manual_seed(seed)
    lp = (torch.randn(6, 3, generator=gen, dtype=torch.float64) * 2).log_softmax(-1)
    path, states, score = ctc.viterbi_align(lp, target)
    best, best_score = _brute_viterbi(lp.numpy(), target)
    assert math.isclose(score, best_score, rel_tol=1e-12)
    assert ctc.collapse(path) == target
    assert math.isclose(sum(lp[t, k].item() for t, k in enumerate(path)), best_score,
                        rel_tol=1e-12)
    ext = ctc.extend_targets(torch.tensor([target], dtype=torch.long))[0][0].tolist()
    assert [ext[s] for s in states] == path
    assert all(0 <= b - a <= 2 for a, b in itertools.pairwise(states))
    # the best path scores at most the sum over all paths, p(l | x)
    assert score <= -ctc.ctc_alpha_beta(lp, torch.tensor(target, dtype=torch.long), 6,
                                        len(target))[2].item() + 1e-12


def test_viterbi_align_refuses_impossible_and_bad_targets():
    lp = torch.zeros(2, 3).log_softmax(-1)
    with pytest.raises(ValueError, match="no path of 2 frames"):
        ctc.viterbi_align(lp, [1, 1])
    with pytest.raises(ValueError, match="other than the blank"):
        ctc.viterbi_align(lp, [0, 1])
    with pytest.raises(ValueError, match="one sequence"):
        ctc.viterbi_align(lp[:, None], [1])


def test_decoder_arguments_are_checked():
    with pytest.raises(ValueError, match="one sequence"):
        ctc.prefix_beam_search(torch.zeros(3, 2, 4), 2)
    with pytest.raises(ValueError, match="beam_size"):
        ctc.prefix_beam_search(torch.zeros(3, 4), 0)
    with pytest.raises(ValueError, match="too many"):
        ctc.label_sequence_log_probs(torch.zeros(30, 4))
    with pytest.raises(ValueError, match="at most T=3"):
        ctc.greedy_decode(torch.zeros(3, 2, 4), [3, 4])
    with pytest.raises(TypeError, match="integers"):
        ctc.greedy_decode(torch.zeros(3, 2, 4), [3.0, 2.0])


# ------------------------------------------------------------------ error rates


@functools.cache
def _levenshtein(a: tuple, b: tuple) -> int:
    """The textbook recursive definition, as an independent reference."""
    if not a or not b:
        return len(a) + len(b)
    return min(_levenshtein(a[1:], b) + 1, _levenshtein(a, b[1:]) + 1,
               _levenshtein(a[1:], b[1:]) + (a[0] != b[0]))


def test_edit_distance_by_hand():
    assert ctc.edit_distance("kitten", "sitting") == (2, 0, 1)
    assert ctc.edit_distance([1, 2, 3], [1, 3]) == (0, 1, 0)
    assert ctc.edit_distance([1, 3], [1, 2, 3]) == (0, 0, 1)
    assert ctc.edit_distance([], [1, 2]) == (0, 0, 2)
    assert ctc.edit_distance([1, 2], []) == (0, 2, 0)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=7), st.lists(st.integers(0, 3), max_size=7))
def test_edit_distance_properties(ref, hyp):
    s, d, i = ctc.edit_distance(ref, hyp)
    assert s + d + i == _levenshtein(tuple(ref), tuple(hyp))
    assert len(hyp) - len(ref) == i - d
    assert min(s, d, i) >= 0


def test_cer():
    assert ctc.cer([1, 2, 3, 1], [1, 3, 1]) == 0.25
    assert ctc.cer([1, 2], [2, 1, 2]) == 0.5
    assert ctc.cer([], []) == 0.0
    assert ctc.cer([], [1]) == math.inf
    assert ctc.corpus_cer([[1, 2], [1, 2, 3, 1]], [[1, 2], [1, 3]]) == 2 / 6
    with pytest.raises(ValueError, match="hypotheses"):
        ctc.corpus_cer([[1]], [])


# ------------------------------------------------------------------ models and training


def test_models_and_step():
    x = torch.randn(3, 1, 50)
    targets = torch.tensor([[1, 2, 0], [3, 1, 2], [2, 0, 0]])
    lengths = torch.tensor([2, 3, 1])
    for model in (ctc.ConvCTC(1, 4), ctc.BiLSTMCTC(1, 4, hidden=8)):
        assert model(x).shape == (3, 50, 4)
        loss, out, target = ctc.ctc_step()(model, (x, targets, lengths))
        log_probs = model(x).log_softmax(-1).transpose(0, 1)
        torch.testing.assert_close(loss, F.ctc_loss(log_probs, targets, out[1], lengths))
        edits, length = ctc.greedy_cer(out, target)
        assert 0 <= edits and length == 6


def _one_hot_log_probs(paths: list[list[int]], classes: int = 4) -> torch.Tensor:
    """(T, N, C) log probabilities whose best path in sequence n is ``paths[n]``."""
    lp = torch.full((len(paths[0]), len(paths), classes), -5.0)
    for n, path in enumerate(paths):
        lp[torch.arange(len(path)), n, torch.tensor(path)] = -0.01
    return lp


def test_greedy_cer_is_a_corpus_ratio_by_hand():
    import labutils as lu

    # batch 1: "12" read as "12" (0 edits of 2); batch 2: "1231" read as "13" (2 deletions
    # of 4) and "3" read as "32" (1 insertion of 1). Corpus CER = 3 / 7; the mean of the
    # two batch rates would be (0 + 3/5) / 2 = 0.3 and the mean per sequence 1/3.
    batches = [
        ((_one_hot_log_probs([[1, 0, 2, 0]]), torch.tensor([4])),
         (torch.tensor([[1, 2]]), torch.tensor([2]))),
        ((_one_hot_log_probs([[1, 0, 3, 0], [3, 3, 0, 2]]), torch.tensor([4, 4])),
         (torch.tensor([[1, 2, 3, 1], [3, 0, 0, 0]]), torch.tensor([4, 1]))),
    ]
    assert ctc.greedy_cer(*batches[1]) == (3, 5)
    result = lu.evaluate(torch.nn.Identity(), batches,
                         step=lambda model, batch: (None, *batch), metrics={"cer": ctc.greedy_cer})
    assert result["cer"] == pytest.approx(3 / 7)


def test_bilstm_reads_frames_of_consecutive_samples():
    torch.manual_seed(0)
    model = ctc.BiLSTMCTC(2, 4, hidden=8, frame=4)
    x = torch.randn(3, 2, 20)
    # frame i: samples 4i..4i+3 of feature 0, then of feature 1, interleaved per sample
    frames = torch.stack([x[:, :, 4 * i:4 * i + 4].transpose(1, 2).flatten(1)
                          for i in range(5)], 1)
    torch.testing.assert_close(model(x), model.head(model.lstm(frames)[0]))
    assert model(x).shape == (3, 5, 4)
    with pytest.raises(ValueError, match="multiple of frame=4"):
        model(torch.randn(3, 2, 21))


def test_decoded_edits_is_a_corpus_ratio():
    probs = torch.tensor([[0.1, 0.8, 0.1], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    lp = torch.stack([probs, probs], 1).log()               # both decode to [1, 2]
    out = (lp, torch.tensor([3, 3]))
    target = (torch.tensor([[1, 2, 2], [2, 0, 0]]), torch.tensor([3, 1]))
    # [1, 2, 2] -> [1, 2]: one deletion; [2] -> [1, 2]: one insertion
    assert ctc.decoded_edits(out, target) == (2, 4)
    assert ctc.decoded_edits(out, target, "deletions") == (1, 4)
    assert ctc.decoded_edits(out, target, "insertions") == (1, 4)
    assert ctc.decoded_edits(out, target, "substitutions") == (0, 4)
    assert ctc.decoded_edits(out, target, beam_size=4) == (2, 4)
    with pytest.raises(ValueError, match="kind"):
        ctc.decoded_edits(out, target, "typos")


def test_he_init_scale():
    torch.manual_seed(0)
    model = ctc.he_init(ctc.ConvCTC(1, 4, channels=64, kernel=5))
    conv = model.body[2]
    fan_in = conv.weight[0].numel()
    assert abs(conv.weight.std().item() / math.sqrt(2 / fan_in) - 1) < 0.05
    assert torch.all(conv.bias == 0)


def test_every_sequence_shorter_than_the_batch_and_an_empty_one():
    """No sequence uses all T frames (so none of the backward recursions starts at frame
    0), one has no frames at all: value and gradient still equal torch's."""
    g = torch.Generator().manual_seed(5)
    T, C = 12, 5
    logits = torch.randn(T, 4, C, generator=g, dtype=torch.float64)
    targets = torch.tensor([[1, 2, 2], [3, 0, 0], [4, 1, 0], [2, 0, 0]])
    input_lengths, target_lengths = [9, 7, 10, 0], [3, 1, 2, 0]
    ours_x = logits.clone().requires_grad_()
    ref_x = logits.clone().requires_grad_()
    ours = ctc.ctc_loss(ours_x.log_softmax(-1), targets, input_lengths, target_lengths,
                        reduction="sum")
    ref = F.ctc_loss(ref_x.log_softmax(-1), targets, torch.tensor(input_lengths),
                     torch.tensor(target_lengths), reduction="sum")
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(ours_x.grad, ref_x.grad)


def test_corpus_cer_agrees_with_torchmetrics():
    text = pytest.importorskip("torchmetrics.functional.text",
                               reason="torchmetrics (a test extra) is not installed")
    refs = [[1, 2, 3, 3], [4], [2, 2, 5, 1, 1, 1]]
    hyps = [[1, 3, 3], [4, 4, 2], [2, 5, 1, 6]]

    def letters(seqs):
        return ["".join(chr(ord("a") + k) for k in s) for s in seqs]

    expected = float(text.char_error_rate(letters(hyps), letters(refs)))
    assert ctc.corpus_cer(refs, hyps) == pytest.approx(expected)


def test_large_mixed_batch_matches_torch():
    """A large batch in one recursion (mixed input and target lengths, one impossible):
    every sequence gets torch's value and gradient, in the original order."""
    g = torch.Generator().manual_seed(7)
    T, N, C, S = 40, 120, 6, 40  # 120 sequences x 81 states
    logits = torch.randn(T, N, C, generator=g, dtype=torch.float64)
    targets = torch.randint(1, C, (N, S), generator=g)
    target_lengths = torch.randint(0, S + 1, (N,), generator=g)
    input_lengths = torch.randint(1, T + 1, (N,), generator=g)
    input_lengths[0], input_lengths[1], target_lengths[1] = T, 3, S  # the 2nd: impossible
    _assert_match(logits, targets, input_lengths, target_lengths, reduction="none")


def test_a_row_just_short_of_torchs_grain_is_padded_and_still_matches_torch(monkeypatch):
    """With two threads, a long row of 16 384 to 32 770 positions is padded past torch's
    grain (so that each kernel is split over both threads): the recursion really runs on the
    padded row, and values and gradients are unchanged."""
    widths = []
    forward = ctc._forward

    def spy(emit, mask, starts):
        widths.append(emit.shape[1])
        return forward(emit, mask, starts)

    monkeypatch.setattr(ctc, "_forward", spy)
    g = torch.Generator().manual_seed(5)
    T, N, C, S = 12, 150, 7, 60
    logits = torch.randn(T, N, C, generator=g, dtype=torch.float64)
    targets = torch.randint(1, C, (N, S), generator=g)
    target_lengths = torch.randint(0, S + 1, (N,), generator=g)
    input_lengths = torch.randint(1, T + 1, (N,), generator=g)
    input_lengths[0] = T
    positions = 2 * int((2 * target_lengths + 3).sum())  # alpha and beta rows
    assert ctc._GRAIN // 2 < positions <= ctc._GRAIN
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _assert_match(logits, targets, input_lengths, target_lengths, reduction="none")
    finally:
        torch.set_num_threads(threads)
    assert widths == [ctc._GRAIN + 3], widths


def test_scratch_memory_is_not_shared_between_losses():
    """The recursion's buffers are reused from call to call: two losses of the same shape,
    both computed before either backward, still get their own gradients (torch's), and a
    lattice returned for plotting is not overwritten by the next call."""
    g = torch.Generator().manual_seed(3)
    T, N, C, S = 30, 4, 5, 6
    first, second = (torch.randn(T, N, C, generator=g).log_softmax(-1).requires_grad_()
                     for _ in range(2))
    targets = torch.randint(1, C, (N, S), generator=g)
    lengths = (torch.full((N,), T), torch.full((N,), S))
    losses = [ctc.ctc_loss(x, targets, *lengths) for x in (first, second)]
    alpha = ctc.ctc_alpha_beta(first.detach(), targets, *lengths)[0]
    expected = alpha.clone()
    ctc.ctc_alpha_beta(second.detach(), targets, *lengths)
    torch.testing.assert_close(alpha, expected, rtol=0, atol=0)
    (losses[0] + 2 * losses[1]).backward()
    for x, weight, loss in zip((first, second), (1, 2), losses, strict=True):
        y = x.detach().requires_grad_()
        reference = F.ctc_loss(y, targets, *lengths)
        (weight * reference).backward()
        torch.testing.assert_close(loss, reference)
        torch.testing.assert_close(x.grad, y.grad)


@pytest.mark.parametrize("flushing", [False, True])
def test_peaky_float32_outputs_match_torch_and_the_subnormal_mode_is_restored(flushing):
    """Confident (peaky) float32 outputs put states 87 to 104 nats apart, where exp gives
    subnormal numbers, which the recursion flushes to zero: values and gradients stay as
    close to torch's float64 result as float32 allows (losses near 1800 nats), and the
    caller's flush mode is left as it was."""
    g = torch.Generator().manual_seed(11)
    T, N, C, S = 120, 6, 8, 15
    logits = 20 * torch.randn(T, N, C, generator=g)
    targets = torch.randint(1, C, (N, S), generator=g)
    lengths = (torch.full((N,), T), torch.full((N,), S))
    torch.set_flush_denormal(flushing)
    try:
        (ours, g_ours), _ = _both(logits, targets, *lengths, reduction="none")
        assert (float(torch.tensor(1e-39, dtype=torch.float32)) == 0.0) == flushing
    finally:
        torch.set_flush_denormal(False)
    _, (ref, g_ref) = _both(logits.double(), targets, *lengths, reduction="none")
    torch.testing.assert_close(ours.double(), ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(g_ours.double(), g_ref, rtol=0, atol=2e-3)


def test_long_row_layout_by_hand():
    """One target [1, 2] (extended: blank 1 blank 2 blank), input length 2 of T = 3: the
    sequence's row, then its flipped row, each two padding columns and five states."""
    ext, skip = ctc.extend_targets(torch.tensor([[1, 2]]))
    mask = ctc._skip_mask(skip, torch.float64)
    row, state, label, skips, frame, begin, width = ctc._layout(
        ext, mask, torch.tensor([2]), torch.tensor([2]), T=3, rows=2)
    inf = math.inf
    assert row.tolist() == [0] * 7 + [1] * 7
    assert state.tolist() == [-2, -1, 0, 1, 2, 3, 4] * 2
    assert label[state >= 0].tolist() == [0, 1, 0, 2, 0] + [0, 2, 0, 1, 0]
    # only 1 -> 2 may skip the blank between: state 3 forwards, flipped state 3 (2 -> 1)
    assert skips.tolist() == [-inf] * 5 + [0.0, -inf] + [-inf] * 5 + [0.0, -inf]
    # forward paths start at frame 0; the flipped ones at frame T - T_n = 1
    assert frame.tolist() == [-1, -1, 0, 0, -1, -1, -1] + [-1, -1, 1, 1, -1, -1, -1]
    assert begin.tolist() == [0, 7] and width.tolist() == [7, 7]
