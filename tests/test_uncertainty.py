"""Uncertainty: the scores against scikit-learn and hand-computed cases, MC dropout that
really samples with batch norm frozen, ensemble members that differ, temperature scaling,
and the parameter-space tools."""

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from torch import nn

from labutils import uncertainty as un


def _random_probs(n=200, c=3, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * 2
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(c, p=row) for row in p])
    return p, y


def test_nll_matches_scikit_learn():
    p, y = _random_probs()
    assert un.nll(p, y) == pytest.approx(log_loss(y, p, labels=[0, 1, 2]), rel=1e-9)


def test_brier_is_twice_scikit_learn_for_two_classes_and_hand_computed_for_three():
    p, y = _random_probs(c=2)
    assert un.brier(p, y) == pytest.approx(2 * brier_score_loss(y, p[:, 1]), rel=1e-9)
    p3 = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    # (0.3^2 + 0.2^2 + 0.1^2) and (0.1^2 + 0.9^2 + 0.8^2)
    assert un.brier(p3, [0, 1]) == pytest.approx((0.14 + 1.46) / 2)


def test_ece_and_reliability_on_a_hand_computed_case():
    p = np.array([[0.95, 0.05], [0.9, 0.1], [0.35, 0.65], [0.4, 0.6], [0.45, 0.55]])
    y = np.array([0, 1, 1, 1, 0])
    r = un.reliability(p, y, bins=5)  # bins (0.8, 1]: two, (0.6, 0.8]: one, (0.4, 0.6]: two
    np.testing.assert_array_equal(r["count"], [0, 0, 2, 1, 2])
    np.testing.assert_allclose(r["confidence"][2:], [0.575, 0.65, 0.925])
    np.testing.assert_allclose(r["accuracy"][2:], [0.5, 1.0, 0.5])
    expected = (2 * 0.075 + 1 * 0.35 + 2 * 0.425) / 5
    assert un.ece(p, y, bins=5) == pytest.approx(expected)
    assert un.ece(np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 1]) == 0.0  # perfect and sure


def test_scores_error_auroc_is_scikit_learns():
    p, y = _random_probs(seed=4)
    s = un.scores(p, y)
    wrong = p.argmax(1) != y
    assert s["error_auroc"] == pytest.approx(roc_auc_score(wrong, un.entropy(p)))
    assert s["accuracy"] == pytest.approx(1 - wrong.mean())


def test_entropy_and_mutual_information_hand_values():
    assert un.entropy(np.array([[0.5, 0.5]]))[0] == pytest.approx(np.log(2))
    same = np.tile(np.array([[[0.3, 0.7]]]), (4, 1, 1))
    assert un.mutual_information(same)[0] == pytest.approx(0.0, abs=1e-12)
    split = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # two sure passes that disagree
    assert un.mutual_information(split)[0] == pytest.approx(np.log(2))


def test_mutual_information_of_three_class_passes_by_hand():
    # passes (0.5, 0.5, 0) and (0.5, 0, 0.5): mean (0.5, 0.25, 0.25) has entropy 1.5 ln 2,
    # each pass ln 2, so the disagreement is 0.5 ln 2
    passes = np.array([[[0.5, 0.5, 0.0]], [[0.5, 0.0, 0.5]]])
    assert un.entropy(passes.mean(0))[0] == pytest.approx(1.5 * np.log(2))
    assert un.mutual_information(passes)[0] == pytest.approx(0.5 * np.log(2))


def test_accept_probs_sums_the_accepted_classes():
    p = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])
    got = un.accept_probs(p, [1, 3])
    assert np.allclose(got, [[0.4, 0.6], [0.8, 0.2]])
    samples = np.stack([p, p[::-1]])  # (S, N, K) keeps its leading axes
    assert np.allclose(un.accept_probs(samples, [0]), [[[0.9, 0.1], [0.3, 0.7]],
                                                       [[0.3, 0.7], [0.9, 0.1]]])
    for bad in ([], [4], [1, 1], [0.5]):
        with pytest.raises(ValueError, match="accepted"):
            un.accept_probs(p, bad)


def test_detection_auroc_counts_pairs_and_matches_scikit_learn():
    known, unknown = np.array([0.1, 0.4, 0.35]), np.array([0.8, 0.35])
    # pairs (unknown above known): 0.8 beats all 3; 0.35 beats 0.1, ties 0.35, loses to 0.4
    assert un.detection_auroc(known, unknown) == pytest.approx((3 + 1 + 0.5) / 6)
    rng = np.random.default_rng(5)
    k, u = rng.normal(size=50), rng.normal(0.7, size=30)
    assert un.detection_auroc(k, u) == pytest.approx(roc_auc_score(np.r_[np.zeros(50), np.ones(30)],
                                                                   np.r_[k, u]))
    with pytest.raises(ValueError, match="both groups"):
        un.detection_auroc(k, [])


def test_pooled_averages_runs_of_consecutive_chunks_within_each_recording():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 5.0])
    recording = np.array(["a", "a", "a", "a", "b", "b", "c"])
    # runs of 2: a -> (1.5, 2.5, 3.5), b -> (15,), c has one chunk: none
    assert un.pooled(scores, recording, 2) == pytest.approx([1.5, 2.5, 3.5, 15.0])
    assert un.pooled(scores, recording, 1) == pytest.approx(scores)
    assert un.pooled(scores, recording, 4) == pytest.approx([2.5])
    with pytest.raises(ValueError, match="no recording has 5"):
        un.pooled(scores, recording, 5)
    with pytest.raises(ValueError, match="consecutive"):
        un.pooled(scores, np.array(["a", "b", "a", "a", "b", "b", "c"]), 2)
    with pytest.raises(ValueError, match="at least 1"):
        un.pooled(scores, recording, 0)


def test_scores_reject_bad_input():
    with pytest.raises(ValueError, match="sum to 1"):
        un.nll(np.array([[2.0, 1.0]]), [0])
    with pytest.raises(ValueError, match=r"\(N, C\).*mean\(0\)"):
        un.ece(np.ones((3, 4, 2)) / 2, [0, 1, 0, 1])


def _small_cnn(p=0.5):
    torch.manual_seed(0)
    model = un.SpeakerCNN(n_mels=16, channels=(4, 4, 4), hidden=8, p=p)
    model.train()
    with torch.no_grad():  # give batch norm running statistics of its own
        model(torch.randn(32, 1, 16, 16) * 3 + 1)
    return model


def test_mc_dropout_samples_with_dropout_on_and_batch_norm_frozen():
    model = _small_cnn()
    x = torch.randn(6, 1, 16, 16)
    stats = model.features[1].running_mean.clone()
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((type(m), m.training)))
             for m in (model.dropout, model.features[1])]
    passes = un.mc_dropout(model, x, passes=20, seed=1)
    for h in hooks:
        h.remove()
    assert passes.shape == (20, 6, 2)
    assert (nn.Dropout, True) in seen and (nn.BatchNorm2d, True) not in seen
    assert torch.equal(model.features[1].running_mean, stats)  # not updated
    assert model.training  # the previous mode is back
    assert passes.std(0).max() > 1e-3  # the passes differ
    # with p = 0 every pass equals the eval-mode prediction: batch norm used running stats
    model.dropout.p = 0.0
    np.testing.assert_allclose(un.mc_dropout(model, x, passes=3)[1], un.predict(model, x),
                               atol=1e-6)
    model.eval()
    reference = torch.softmax(model(x), -1).detach().numpy()
    np.testing.assert_allclose(un.predict(model, x), reference, atol=1e-6)


def test_mc_dropout_needs_dropout():
    with pytest.raises(ValueError, match="no dropout"):
        un.mc_dropout(nn.Linear(3, 2), torch.randn(2, 3), passes=2)


def test_ensemble_members_differ_and_are_averaged():
    members = un.seeded_models(lambda: un.SpeakerCNN(16, (4, 4, 4), 8), 3, seed=10)
    w = [m.fc2.weight.detach() for m in members]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    again = un.seeded_models(lambda: un.SpeakerCNN(16, (4, 4, 4), 8), 3, seed=10)
    assert torch.equal(again[2].fc2.weight, w[2])  # seeded
    x = torch.randn(5, 1, 16, 16)
    probs = un.ensemble(members, x)
    assert probs.shape == (3, 5, 2)
    assert np.abs(probs[0] - probs[1]).max() > 1e-4
    for m, p in zip(members, probs, strict=True):
        m.eval()
        np.testing.assert_allclose(p, torch.softmax(m(x), -1).detach().numpy(), atol=1e-6)


def test_fit_temperature_finds_the_nll_minimum():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2000, 3)) * 3
    true_t = 2.5
    p = np.exp(z / true_t) / np.exp(z / true_t).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    t = un.fit_temperature(z, y)
    grid = np.linspace(1.0, 5.0, 401)
    nlls = [log_loss(y, np.exp(z / g) / np.exp(z / g).sum(1, keepdims=True)) for g in grid]
    assert t == pytest.approx(grid[int(np.argmin(nlls))], abs=0.01)
    assert t == pytest.approx(true_t, rel=0.1)


def test_layer_change_hand_case():
    before = {"a.weight": torch.ones(2, 2), "a.bias": torch.zeros(2)}
    after = {"a.weight": torch.tensor([[1.0, 1.0], [1.0, 3.0]]), "a.bias": torch.ones(2)}
    assert un.layer_change(before, after) == {"a.weight": pytest.approx(2 / 2)}


def test_reinitialised_resets_one_layer_only():
    model = _small_cnn()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # "training"
    back = un.reinitialised(model, "fc1", start)
    assert torch.equal(back.fc1.weight, start["fc1.weight"])
    assert torch.equal(back.fc2.weight, model.fc2.weight)
    assert not torch.equal(model.fc1.weight, start["fc1.weight"])  # original untouched
    fresh = un.reinitialised(model, "features.0")
    assert not torch.equal(fresh.features[0].weight, model.features[0].weight)
    assert not torch.equal(fresh.features[0].weight, start["features.0.weight"])
    with pytest.raises(ValueError, match="not a layer"):
        un.reinitialised(model, "features.2")  # a ReLU


def test_mc_explorer_draws_the_passes_and_the_calibration_curve():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labutils.plotting import draw_mc_passes

    rng = np.random.default_rng(0)
    p1 = rng.uniform(size=(50, 40))
    samples = np.stack([1 - p1, p1], -1)
    labels = rng.integers(0, 2, 40)
    for passes, chunk in ((1, 0), (7, 3), (50, 39)):
        fig = plt.figure()
        draw_mc_passes(fig, samples, labels, chunk, passes)
        left, right = fig.axes
        x, yv = left.collections[0].get_offsets().T
        np.testing.assert_allclose(yv, p1[:passes, chunk])
        running = left.lines[0].get_ydata()
        expected_running = np.cumsum(p1[:passes, chunk]) / np.arange(1, passes + 1)
        np.testing.assert_allclose(running, expected_running)
        spread = np.std(p1[:passes, chunk])
        assert f"mean {p1[:passes, chunk].mean():.2f} ± {spread:.2f}" in left.get_title()
        expected = un.ece(samples[:passes].mean(0), labels)
        assert f"ECE {expected:.3f}" in right.get_title()
        plt.close(fig)


def test_accept_probs_of_a_float32_softmax_are_valid_probabilities():
    """A float32 softmax over the accepted speakers can sum to 1 + 1e-7: the reject column
    must not go negative (scores() would refuse it)."""
    p = np.array([[0.5, 0.50000006, 0.0]], dtype=np.float32)
    got = un.accept_probs(p, [0, 1])
    assert got.min() >= 0 and np.allclose(got, [[0.0, 1.0]])
    un.scores(got, [1])
