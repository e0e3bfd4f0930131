"""labutils.sleep: features, normalisation, windows, CTC targets, models, metrics against
scikit-learn and hand-computed cases; the hypnogram scrubber's draw function."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

from labutils import ctc, plotting, sleep


def test_band_powers_find_the_band_of_a_sine():
    t = np.arange(3000) / 100
    rng = np.random.default_rng(0)
    for k, f in enumerate((2.0, 6.0, 10.0, 13.5, 20.0)):  # one sine in each band
        x = np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(3000)
        feats = sleep.band_powers(x[None, None])
        assert feats.shape == (1, 5)
        assert feats[0].argmax() == k
        # nearly all the power in the band: the mean over its n bins is close to 1 / n
        lo, hi = list(sleep.BANDS.values())[k]
        bins = np.fft.rfftfreq(256, 1 / 100)
        n = ((bins >= lo) & (bins < hi)).sum()
        assert 0.9 / n < feats[0, k] <= 1 / n + 1e-9
    with pytest.raises(ValueError, match=r"\(E, C, S\)"):
        sleep.band_powers(np.zeros((10, 3000)))


def test_normalize_night_is_a_robust_z_score():
    rng = np.random.default_rng(1)
    x = np.stack([rng.normal(5.0, 40.0, (50, 3000)), rng.normal(-2.0, 0.5, (50, 3000))], 1)
    z = sleep.normalize_night(x)
    assert z.dtype == np.float32 and z.shape == x.shape
    for c in range(2):  # a Gaussian channel becomes close to standard normal
        assert abs(z[:, c].mean()) < 0.01 and abs(z[:, c].std() - 1) < 0.01
    x[:, 1] = 3.0
    with pytest.raises(ValueError, match="constant"):
        sleep.normalize_night(x)


def test_windows_stay_inside_their_night():
    a = (np.arange(10)[:, None, None] * np.ones((10, 2, 4)), np.arange(10) % 5)
    b = (100 + np.arange(7)[:, None, None] * np.ones((7, 2, 4)), np.arange(7) % 5)
    ds = sleep.Windows([a, b], length=4, stride=3)
    # night a: starts 0, 3, 6; night b: starts 0, 3
    assert len(ds) == 5
    x, y = ds[1]
    assert x.shape == (4, 2, 4) and x[:, 0, 0].tolist() == [3, 4, 5, 6]
    assert y.tolist() == [3, 4, 0, 1]
    x, _ = ds[4]
    assert x[:, 0, 0].tolist() == [103, 104, 105, 106]
    with pytest.raises(ValueError, match="shorter window"):
        sleep.Windows([a], length=11, stride=1)


def test_stage_sequence_and_transitions():
    assert sleep.stage_sequence([2, 2, 3, 3, 2, 0, 0]) == [2, 3, 2, 0]
    assert sleep.transitions([2, 2, 3, 3, 2, 0, 0]) == 3
    assert sleep.transitions([1, 1, 1]) == 0 and sleep.transitions([]) == 0


def test_bout_lengths_and_merging_short_bouts_by_hand():
    y = np.array([2, 2, 3, 2, 2, 0, 1, 1])
    assert sleep.bout_lengths(y).tolist() == [2, 2, 1, 2, 2, 1, 2, 2]
    assert sleep.bout_lengths([4]).tolist() == [1]
    # the 1-epoch N3 and W bouts take the stage before them; the 2-epoch bouts stay
    assert sleep.merge_short_bouts(y, 1).tolist() == [2, 2, 2, 2, 2, 2, 1, 1]
    # with 2, the first bout stays (no epoch before it), the last one takes N2 from the merged W
    assert sleep.merge_short_bouts(y, 2).tolist() == [2, 2, 2, 2, 2, 2, 2, 2]
    assert sleep.merge_short_bouts(y, 0).tolist() == y.tolist()
    assert y.tolist() == [2, 2, 3, 2, 2, 0, 1, 1]  # the input is left alone
    with pytest.raises(ValueError, match=r"\(E,\)"):
        sleep.bout_lengths(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="max_length >= 0"):
        sleep.merge_short_bouts(y, -1)


def test_ctc_batch_targets_are_shifted_stage_sequences():
    items = [(torch.zeros(5, 1, 3), torch.tensor([0, 0, 2, 2, 4])),
             (torch.ones(5, 1, 3), torch.tensor([3, 3, 3, 3, 3]))]
    x, targets, lengths = sleep.ctc_batch(items)
    assert x.shape == (2, 5, 1, 3)
    assert targets.tolist() == [[1, 3, 5], [4, 0, 0]] and lengths.tolist() == [3, 1]


def test_models_shapes_and_ctc_step_matches_torch():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 3, 3000)
    frame = sleep.SleepStager(5, width=8, features=16, hidden=8)
    assert frame(x).shape == (2, 6, 5)
    model = sleep.SleepStager(6, width=8, features=16, hidden=8).eval()
    items = [(x[0], torch.tensor([0, 0, 1, 2, 2, 4])), (x[1], torch.tensor([3] * 6))]
    batch = sleep.ctc_batch(items)
    loss, (log_probs, input_lengths), _ = ctc.ctc_step()(model, batch)
    reference = torch.nn.functional.ctc_loss(log_probs, batch[1], input_lengths, batch[2])
    torch.testing.assert_close(loss, reference)


def test_framewise_loss_and_accuracy():
    logits = torch.randn(3, 4, 5)
    stages = torch.randint(0, 5, (3, 4))
    expected = torch.nn.functional.cross_entropy(logits.permute(0, 2, 1), stages)
    torch.testing.assert_close(sleep.framewise_loss(logits, stages), expected)
    right = (logits.argmax(-1) == stages).sum().item()
    assert math.isclose(sleep.framewise_accuracy(logits, stages), right / 12, rel_tol=1e-6)


def test_night_log_probs_runs_window_by_window():
    torch.manual_seed(1)
    model = sleep.SleepStager(5, width=8, features=16, hidden=8).eval()
    x = torch.randn(7, 3, 3000)
    out = sleep.night_log_probs(model, x, window=3)
    assert out.shape == (7, 5)
    with torch.no_grad():
        parts = [model(x[None, a:b])[0] for a, b in ((0, 3), (3, 6), (6, 7))]
    torch.testing.assert_close(out, torch.cat(parts).log_softmax(-1))
    with torch.no_grad():  # window=None: one pass over the whole night
        whole = model(x[None])[0].log_softmax(-1)
    torch.testing.assert_close(sleep.night_log_probs(model, x, window=None), whole)


def test_ctc_decoding_helpers():
    lp = torch.full((6, 6), -10.0)
    for t, k in enumerate([0, 3, 0, 0, 5, 5]):  # blank, N2, blank, blank, R, R
        lp[t, k] = 0.0
    assert sleep.ctc_stage_sequence(lp) == [2, 4]
    assert sleep.ctc_framewise(lp).tolist()[1] == 2
    # a frame where N1 (label 2) has 0.4 and the blank 0.6: only a penalty above
    # ln(0.6 / 0.4) = 0.405 lets greedy decoding emit it
    flat = torch.tensor([[0.6, 0.0, 0.4, 0.0, 0.0, 0.0]]).clamp(min=1e-9).log()
    assert sleep.ctc_stage_sequence(flat) == []
    assert sleep.ctc_stage_sequence(flat, 0.3) == []
    assert sleep.ctc_stage_sequence(flat, 0.5) == [1]
    best, cers = sleep.tune_blank_penalty([flat], [np.array([1])], [0.0, 0.5, 2.0])
    assert best == 0.5 and cers == [1.0, 0.0, 0.0]


def test_epoch_scores_against_scikit_learn_and_a_hand_case():
    # hand case: observed agreement 3/4, chance agreement 1/2 -> kappa 0.5
    scores = sleep.epoch_scores([0, 0, 1, 1], [0, 1, 1, 1])
    assert math.isclose(scores["kappa"], 0.5)
    assert math.isclose(scores["accuracy"], 0.75)
    assert math.isclose(scores["macro_f1"], (2 / 3 + 0.8) / 2)
    rng = np.random.default_rng(2)
    y, p = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    p[:150] = y[:150]
    scores = sleep.epoch_scores(y, p)
    assert math.isclose(scores["kappa"], cohen_kappa_score(y, p))
    assert math.isclose(scores["macro_f1"], f1_score(y, p, average="macro"))
    assert math.isclose(scores["accuracy"], accuracy_score(y, p))
    with pytest.raises(ValueError, match="predictions"):
        sleep.epoch_scores([0, 1], [0])


def test_sequence_scores_hand_case():
    true = [np.array([0, 0, 1, 1, 2, 2]), np.array([3, 3, 3])]
    pred = [np.array([0, 1, 0, 1, 2, 2]), [3]]
    scores = sleep.sequence_scores(true, pred)
    # night 1: [0, 1, 2] against [0, 1, 0, 1, 2]: two insertions; night 2 exact
    assert math.isclose(scores["cer"], 2 / 4)
    assert math.isclose(scores["transition_error"], (2 + 0) / 2)
    assert math.isclose(scores["true_transitions"], 1.0)


def test_hypnogram_scrubber_draws_each_epoch():
    rng = np.random.default_rng(3)
    E = 12
    x = rng.standard_normal((E, 3, 3000))
    stages = np.array([0, 0, 1, 2, 2, 3, 3, 2, 4, 4, 0, 0])
    frame = rng.dirichlet(np.ones(5), E)
    ctc_probs = rng.dirichlet(np.ones(6), E)
    freqs = np.linspace(0, 50, 129)
    spectra = rng.random((E, 3, 129)) + 0.1
    for epoch in (0, 5, E - 1):
        fig = plt.figure()
        plotting.draw_sleep_scrubber(fig, epoch, x, stages, frame, ctc_probs, freqs, spectra,
                                     ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal"))
        hyp, _, spec, bars = fig.axes
        for c in range(3):  # each channel's spectrum of the chosen epoch
            np.testing.assert_array_equal(spec.lines[c].get_ydata(), spectra[epoch, c])
        assert f"epoch {epoch + 1} of {E}" in hyp.get_title()
        assert hyp.get_title().endswith(plotting.SLEEP_STAGES[stages[epoch]])
        marker = hyp.lines[-1].get_xdata()[0]
        assert math.isclose(marker, epoch * 30 / 3600)
        heights = [p.get_height() for p in bars.patches]
        np.testing.assert_allclose(heights[:5], frame[epoch])
        np.testing.assert_allclose(heights[5:], ctc_probs[epoch, 1:])
        plt.close(fig)


def test_ctc_targets_hand_case():
    targets, lengths = sleep.ctc_targets(torch.tensor([[2, 2, 3, 2, 2], [0, 0, 0, 0, 0]]))
    assert targets.tolist() == [[3, 4, 3], [1, 0, 0]] and lengths.tolist() == [3, 1]


def test_joint_stager_starts_from_the_framewise_model():
    torch.manual_seed(2)
    stager = sleep.SleepStager(5, width=8, features=16, hidden=8).eval()
    x = torch.randn(9, 3, 3000)
    z = sleep.epoch_features(stager.encoder, x, batch=4)  # three batches, stitched
    with torch.no_grad():
        torch.testing.assert_close(z, stager.encoder(x), rtol=1e-5, atol=1e-6)
        expected = stager(x[None])[0].log_softmax(-1)
    joint = sleep.JointStager.from_stager(stager)
    frame, ctc_lp = sleep.joint_night_log_probs(joint, z)
    torch.testing.assert_close(frame, expected, rtol=1e-5, atol=1e-5)
    assert ctc_lp.shape == (9, 6)
    torch.testing.assert_close(ctc_lp.exp().sum(-1), torch.ones(9))
    with pytest.raises(ValueError, match="framewise stager"):
        sleep.JointStager.from_stager(sleep.SleepStager(6, width=8, features=16, hidden=8))


def test_joint_step_mixes_ctc_and_cross_entropy_as_torch_does():
    torch.manual_seed(3)
    model = sleep.JointStager(features=4, hidden=5).eval()
    z = torch.randn(2, 7, 4)
    stages = torch.tensor([[0, 0, 1, 2, 2, 2, 4], [3, 3, 3, 3, 3, 3, 3]])
    loss, (log_probs, input_lengths), (targets, lengths) = sleep.joint_step(0.3)(model, (z, stages))
    frame, ctc_logits = model(z)
    lp = ctc_logits.log_softmax(-1).transpose(0, 1)
    tg = torch.tensor([[1, 2, 3, 5], [4, 0, 0, 0]])
    reference = (0.7 * torch.nn.functional.ctc_loss(lp, tg, torch.tensor([7, 7]),
                                                    torch.tensor([4, 1]))
                 + 0.3 * torch.nn.functional.cross_entropy(frame.permute(0, 2, 1), stages))
    torch.testing.assert_close(loss, reference)
    assert targets.tolist() == tg.tolist() and lengths.tolist() == [4, 1]
    assert input_lengths.tolist() == [7, 7] and log_probs.shape == (7, 2, 6)
    with pytest.raises(ValueError, match="frame_weight"):
        sleep.joint_step(1.5)
