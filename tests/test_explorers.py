"""The draw functions of the explorers of notebooks 05 and 06, for a few control values."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from labutils import ctc, plotting


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _maps():
    gen = torch.Generator().manual_seed(0)
    maps = {"cross": [torch.rand(4, 3, 5, generator=gen).softmax(-1) for _ in range(2)]}
    labels = {"cross": (["a", "b", "c"], list("01234"))}
    return maps, labels


@pytest.mark.parametrize("layer,head", [(1, 1), (2, 4), (1, 3)])
def test_attention_viewer_shows_the_chosen_head_counted_from_one(layer, head):
    maps, labels = _maps()
    fig = plt.figure()
    ax = plotting.draw_attention_head(fig, maps, labels, "cross", layer, head)
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown, maps["cross"][layer - 1][head - 1].numpy())
    assert ax.get_title() == f"cross: layer {layer} of 2, head {head} of 4"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]


def test_attention_viewer_refuses_a_zero_based_index():
    maps, labels = _maps()
    with pytest.raises(ValueError, match="out of range"):
        plotting.draw_attention_head(plt.figure(), maps, labels, "cross", 0, 1)


def _lattice(word=(1, 2, 2), T=8):
    gen = torch.Generator().manual_seed(1)
    lp = torch.randn(T, 3, generator=gen, dtype=torch.float64).log_softmax(-1)
    la, lb, nll = ctc.ctc_alpha_beta(lp, torch.tensor(word), T, len(word))
    ext = ctc.extend_targets(torch.tensor([word]))[0][0].tolist()
    return {"log_alpha": la.numpy(), "log_beta": lb.numpy(), "states": [str(k) for k in ext]}, nll


@pytest.mark.parametrize("t", [1, 4, 8])
def test_lattice_explorer_bars_are_the_posterior_of_frame_t(t):
    lattice, nll = _lattice()
    fig = plt.figure()
    axes = plotting.draw_ctc_lattice(fig, {"122": lattice}, "122", t)
    heights = np.array([bar.get_width() for bar in axes[3].patches])
    expected = np.exp(lattice["log_alpha"][t - 1] + lattice["log_beta"][t - 1] + nll.item())
    np.testing.assert_allclose(heights, expected, atol=1e-12)
    assert math.isclose(heights.sum(), 1.0, rel_tol=1e-9)
    assert f"frame {t} of 8" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="outside 1..8"):
        plotting.draw_ctc_lattice(plt.figure(), {"122": lattice}, "122", 0)


def test_beam_explorer_reports_a_miss_and_a_hit():
    probs = torch.tensor([[.5, .4, .1], [.5, .1, .4], [.5, .4, .1], [.5, .1, .4]],
                         dtype=torch.float64)
    exact = ctc.label_sequence_log_probs(probs.log())
    beams = {w: ctc.prefix_beam_search(probs.log(), w) for w in (2, 8)}
    narrow = plotting.draw_beam_search(plt.figure(), beams, exact, 2)
    wide = plotting.draw_beam_search(plt.figure(), beams, exact, 8)
    assert "missed" in narrow.get_title() and "the best labelling" in wide.get_title()
    scores = [bar.get_width() for bar in wide.patches[:len(beams[8][:8])]]
    np.testing.assert_allclose(scores, [math.exp(s) for _, s in beams[8][:8]])
