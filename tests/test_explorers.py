"""The draw functions of the explorers of notebooks 00, 01, 02, 05 and 06, for a few control
values (those of 03, 04, 07, 08 and 09 are tested with their topic modules)."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.signal
import torch

from labutils import audio, ctc, plotting


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


def test_vowel_explorer_draws_the_chosen_spectrum_under_its_formants():
    freqs = np.linspace(0, 4000, 50)
    spectra = {(v, f0): np.sin(freqs / (100 + f0)) + i for i, v in enumerate(["a", "i"])
               for f0 in (100, 200)}
    for vowel, f0 in [("a", 100), ("i", 200)]:
        ax = plotting.draw_vowel_spectrum(plt.figure(), vowel, f0, freqs=freqs, spectra=spectra)
        np.testing.assert_array_equal(ax.lines[0].get_ydata(), spectra[vowel, f0])
        dashed = [line.get_xdata()[0] for line in ax.lines[1:]]
        assert dashed == list(audio.VOWEL_FORMANTS[vowel])
        assert f"/{vowel}/ at f0 = {f0} Hz" in ax.get_title()
    with pytest.raises(ValueError, match="precompute"):
        plotting.draw_vowel_spectrum(plt.figure(), "a", 150, freqs=freqs, spectra=spectra)


def _rnn_inputs(H=6, T=12):
    gen = torch.Generator().manual_seed(2)
    Q, _ = torch.linalg.qr(torch.randn(H, H, generator=gen, dtype=torch.float64))
    W_hx = torch.randn(H, 2, generator=gen, dtype=torch.float64)
    x = torch.randn(T, 2, generator=gen, dtype=torch.float64)
    h0 = 0.1 * torch.randn(H, generator=gen, dtype=torch.float64)
    return {"Q": Q, "W_hx": W_hx, "x": x, "h0": h0}


@pytest.mark.parametrize("rho", [0.7, 1.0, 1.3])
def test_gradient_norm_explorer_linear_curve_is_rho_to_the_k(rho):
    inputs = _rnn_inputs()
    fig = plt.figure()
    norms = plotting.draw_gradient_norms(fig, rho, "identity", 3.0, **inputs)
    drawn = fig.axes[0].lines[0].get_ydata()
    np.testing.assert_allclose(drawn, norms)
    np.testing.assert_allclose(drawn, rho ** np.arange(13), rtol=1e-10)  # ||(rho Q)^k|| = rho^k
    assert f"= {rho:.2f}: the gradient from 12 steps back" in fig.axes[0].get_title()


@pytest.mark.parametrize("rho, input_scale", [(0.9, 1.0), (1.3, 0.5), (1.3, 8.0)])
def test_gradient_norm_explorer_tanh_curve_is_the_jacobian_norm(rho, input_scale):
    inputs = _rnn_inputs()
    Q, W_hx, x, h0 = inputs["Q"], inputs["W_hx"], input_scale * inputs["x"], inputs["h0"]
    fig = plt.figure()
    plotting.draw_gradient_norms(fig, rho, "tanh", input_scale, **inputs)
    drawn = fig.axes[0].lines[0].get_ydata()
    T = len(x)
    states = [h0]
    for t in range(T):
        states.append(torch.tanh(W_hx @ x[t] + rho * Q @ states[-1]))
    for k in (0, 1, 5, T):  # autograd's dh_T / dh_{T-k}, with h_{T-k} the state after step T-k

        def last(h, k=k):
            for t in range(T - k, T):
                h = torch.tanh(W_hx @ x[t] + rho * Q @ h)
            return h

        J = torch.autograd.functional.jacobian(last, states[T - k])
        assert drawn[k] == pytest.approx(torch.linalg.matrix_norm(J, ord=2).item(), rel=1e-9)
    with pytest.raises(ValueError, match="tanh"):
        plotting.draw_gradient_norms(plt.figure(), rho, "relu", 1.0, **inputs)


def _clips(C=3, N=2000):
    rng = np.random.default_rng(4)
    clean = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal((C, N)), axis=1)
    noise = rng.standard_normal((C, N))
    noise /= np.sqrt((noise**2).mean(1, keepdims=True))  # exactly unit power per clip
    return clean, noise


@pytest.mark.parametrize("snr_db, taps", [(0.0, 1), (5.0, 8), (-5.0, 20)])
def test_wiener_explorer_response_and_gain_match_least_squares(snr_db, taps):
    clean, noise = _clips()
    sr = 8000
    fig = plt.figure()
    shown = plotting.draw_wiener_explorer(fig, clean, noise, snr_db, taps, sr, label="white noise")
    # reference: least squares on the lagged noisy samples of the first two clips (numpy)
    noisy = clean + noise * np.sqrt((clean**2).mean(1, keepdims=True)) / 10 ** (snr_db / 20)
    rows = np.concatenate([np.stack([np.concatenate([np.zeros(k), c[:len(c) - k]])
                                     for k in range(taps)], 1) for c in noisy[:-1]])
    h = np.linalg.lstsq(rows, clean[:-1].reshape(-1), rcond=None)[0]
    np.testing.assert_allclose(shown["h"], h, rtol=1e-6, atol=1e-9)
    if taps == 1:  # a single gain: <x, y> / <x, x>
        assert h[0] == pytest.approx((noisy[:-1] * clean[:-1]).sum() / (noisy[:-1] ** 2).sum())
    out = scipy.signal.lfilter(h, [1.0], noisy[-1])
    np.testing.assert_allclose(shown["filtered"], out, rtol=1e-6, atol=1e-9)
    # the noisy clip's SNR is snr_db by construction; the gain is the filtered clip's SNR minus it
    gain = 10 * np.log10((clean[-1] ** 2).sum() / ((clean[-1] - out) ** 2).sum()) - snr_db
    assert shown["gain_db"] == pytest.approx(gain, abs=1e-6)
    main = fig.axes[0]
    assert main.get_title() == f"white noise at {snr_db:g} dB, {taps} taps: SNR gain {gain:+.2f} dB"
    response = next(ax for ax in fig.axes if ax.get_ylabel() == "|H(f)| (dB)")
    f_khz, level = response.lines[0].get_data()
    _, H = scipy.signal.freqz(h, worN=1e3 * f_khz, fs=sr)
    np.testing.assert_allclose(level, 20 * np.log10(np.abs(H) + 1e-9), atol=1e-6)


def test_wiener_explorer_refuses_clips_it_cannot_split():
    clean, noise = _clips()
    with pytest.raises(ValueError, match="C - 1 to fit"):
        plotting.draw_wiener_explorer(plt.figure(), clean[:1], noise[:1], 0.0, 4, 8000)
    with pytest.raises(ValueError, match="must both be"):
        plotting.draw_wiener_explorer(plt.figure(), clean, noise[:, :100], 0.0, 4, 8000)
