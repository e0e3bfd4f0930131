"""labutils.spectral against independent references: torch.stft / torch.istft,
librosa.stft, closed forms of the Hann window's overlap-add, and hand-made spectra."""

import librosa
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labutils import spectral


def _signal(n, seed=0, batch=()):
    return torch.randn(*batch, n, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


@settings(max_examples=15, deadline=None)
@given(n_fft=st.sampled_from([8, 15, 64, 256]), hop_div=st.sampled_from([1, 2, 3, 4]),
       n=st.integers(300, 700), center=st.booleans(), seed=st.integers(0, 2**16))
def test_stft_matches_torch_stft(n_fft, hop_div, n, center, seed):
    x = _signal(n, seed, batch=(2,))
    window = torch.hann_window(n_fft, dtype=torch.float64)
    hop = max(1, n_fft // hop_div)
    ours = spectral.stft(x, window, hop, center=center)
    ref = torch.stft(x, n_fft, hop, window=window, center=center, return_complex=True)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref)


def test_stft_matches_librosa_with_constant_padding():
    x = _signal(2000, 3)
    window = torch.from_numpy(librosa.filters.get_window("hann", 512, fftbins=True))
    ours = spectral.stft(x, window, 128, pad_mode="constant")
    ref = librosa.stft(x.numpy(), n_fft=512, hop_length=128, window="hann", center=True,
                       pad_mode="constant")
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-9)


def test_frame_counts_and_contents_by_hand():
    x = torch.arange(10.0)
    frames = spectral.frame(x, 4, 3, center=False)
    assert frames.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    centred = spectral.frame(x, 4, 2, center=True, pad_mode="constant")
    assert centred.shape == (1 + 10 // 2, 4)
    assert centred[0].tolist() == [0, 0, 0, 1] and centred[1].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="fewer than one frame"):
        spectral.frame(x[:3], 4, 1, center=False)


def test_stft_rejects_a_hop_longer_than_the_window():
    with pytest.raises(ValueError, match="hop must lie"):
        spectral.stft(_signal(100), torch.hann_window(16, dtype=torch.float64), 17)


@settings(max_examples=15, deadline=None)
@given(n_fft=st.sampled_from([16, 64, 128]), hop_div=st.sampled_from([2, 3, 4, 8]),
       n=st.integers(200, 600), seed=st.integers(0, 2**16))
def test_istft_matches_torch_istft_on_modified_spectrograms(n_fft, hop_div, n, seed):
    window = torch.hann_window(n_fft, dtype=torch.float64)
    hop = n_fft // hop_div
    spec = torch.stft(_signal(n, seed), n_fft, hop, window=window, return_complex=True)
    spec = spec * torch.rand(spec.shape, generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64)  # not the STFT of any signal
    ours = spectral.istft(spec, window, hop, length=n)
    ref = torch.istft(spec, n_fft, hop, window=window, length=n)
    torch.testing.assert_close(ours, ref)


def test_istft_inverts_stft_exactly():
    x = _signal(1000, 5, batch=(3,))
    window = torch.hann_window(200, dtype=torch.float64)
    spec = spectral.stft(x, window, 50)
    torch.testing.assert_close(spectral.istft(spec, window, 50, length=1000), x)


def test_istft_refuses_frames_that_do_not_cover_the_signal():
    window = torch.hann_window(8, dtype=torch.float64)
    spec = torch.stft(_signal(64), 8, 4, window=window, return_complex=True)
    with pytest.raises(ValueError, match="NOLA"):
        spectral.istft(spec, window, 4, length=200)
    with pytest.raises(ValueError, match="frequencies"):
        spectral.istft(spec, torch.hann_window(16, dtype=torch.float64), 4, length=64)


def test_overlap_add_by_hand():
    frames = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    assert spectral.overlap_add(frames, 2).tolist() == [1, 2, 13, 20, 30]
    assert spectral.overlap_add(frames, 3).tolist() == [1, 2, 3, 10, 20, 30]


@pytest.mark.parametrize("n_fft", [16, 512, 1024])
def test_hann_cola_closed_forms(n_fft):
    hann = torch.hann_window(n_fft, dtype=torch.float64)  # periodic: 0.5 - 0.5 cos(2 pi n / L)
    # sum over frames hop = L/2 is exactly 1 (cos terms cancel), L/4: 2
    assert spectral.cola_ripple(hann, n_fft // 2) < 1e-12
    env = spectral.overlap_add_envelope(hann, n_fft // 4, 12)
    torch.testing.assert_close(env[n_fft: 2 * n_fft], torch.full((n_fft,), 2.0,
                                                                 dtype=torch.float64))
    # squared Hann: sum at hop L/4 is 3/2 (constant), at hop L/2 it is 1 - 2 sin^2 cos^2 ...
    env2 = spectral.overlap_add_envelope(hann, n_fft // 4, 12, power=2)
    torch.testing.assert_close(env2[n_fft: 2 * n_fft], torch.full((n_fft,), 1.5,
                                                                  dtype=torch.float64))
    n = torch.arange(n_fft // 2, dtype=torch.float64)
    half = torch.sin(torch.pi * n / n_fft) ** 4 + torch.cos(torch.pi * n / n_fft) ** 4
    env_half = spectral.overlap_add_envelope(hann, n_fft // 2, 6, power=2)
    torch.testing.assert_close(env_half[n_fft: n_fft + n_fft // 2], half)
    # ... whose ripple is (1 - 1/2) / mean, mean 3/4
    assert spectral.cola_ripple(hann, n_fft // 2, power=2) == pytest.approx(0.5 / 0.75)


def test_symmetric_hann_and_rectangle_cola():
    sym = torch.hann_window(64, periodic=False, dtype=torch.float64)
    assert spectral.cola_ripple(sym, 32) > 1e-2  # the symmetric window is not COLA
    assert spectral.cola_ripple(torch.ones(64, dtype=torch.float64), 64) < 1e-12
    # rectangle at hop 48: per 48 samples, 16 are covered twice and 32 once: mean 4/3
    assert spectral.cola_ripple(torch.ones(64, dtype=torch.float64), 48) == pytest.approx(0.75)


def test_stft_config_round_trip_and_shapes():
    cfg = spectral.StftConfig(n_fft=256, hop=64)
    x = _signal(3000, 7, batch=(2, 1)).float()
    spec = cfg.analyze(x)
    assert spec.shape == (2, 1, 129, 1 + 3000 // 64)
    ref = torch.stft(x[1, 0], 256, 64, window=torch.hann_window(256), return_complex=True)
    torch.testing.assert_close(spec[1, 0], ref)
    torch.testing.assert_close(cfg.synthesize(spec, 3000), x, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="hop"):
        spectral.StftConfig(n_fft=256, hop=300)


def test_with_phase_keeps_the_phase_and_sets_the_magnitude():
    spec = torch.tensor([[3 + 4j, -2j, 0j]], dtype=torch.complex128)
    out = spectral.with_phase(torch.tensor([[10.0, 1.0, 2.0]], dtype=torch.float64), spec)
    torch.testing.assert_close(out, torch.tensor([[6 + 8j, -1j, 2 + 0j]],
                                                 dtype=torch.complex128))


def test_quietest_frames_and_noise_from_frames():
    power = torch.tensor([[1.0, 9.0, 2.0, 8.0, 1.5],
                          [3.0, 9.0, 4.0, 8.0, 2.5]])  # frame energies 4, 18, 6, 16, 4
    quiet = spectral.quietest_frames(power, fraction=0.4)
    assert quiet.tolist() == [True, False, False, False, True]
    noise = spectral.noise_from_frames(power, quiet)
    torch.testing.assert_close(noise, torch.tensor([[1.25], [2.75]]))
    with pytest.raises(ValueError, match="no frame"):
        spectral.noise_from_frames(power, torch.zeros(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="fraction"):
        spectral.quietest_frames(power, 0.0)


def test_minimum_statistics_by_hand():
    power = torch.tensor([[4.0, 4.0, 0.0, 4.0, 4.0, 4.0]])
    est = spectral.minimum_statistics(power, window=2, smoothing=0.5, bias=2.0)
    # smoothed: 4, 4, 2, 3, 3.5, 3.75; trailing minimum over 2 frames, times 2
    torch.testing.assert_close(est, 2 * torch.tensor([[4.0, 4.0, 2.0, 2.0, 3.0, 3.5]]))


def test_minimum_statistics_tracks_stationary_noise_under_bursts():
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(40000, generator=gen, dtype=torch.float64)
    burst = torch.zeros(40000, dtype=torch.float64)
    burst[10000:14000] = 20 * torch.sin(torch.arange(4000) * 0.7)
    window = torch.hann_window(256, dtype=torch.float64)
    power = spectral.stft(noise + burst, window, 64).abs().pow(2)
    true = window.pow(2).sum()  # E|X|^2 of unit white noise in every bin off DC/Nyquist
    est = spectral.minimum_statistics(power, window=80, smoothing=0.8, bias=1.0)
    during = est[5:-5, 160:220]  # inside the burst, away from DC and Nyquist
    assert 0.2 < during.median() / true < 1.0  # the minimum sits below the mean, not on the burst


def test_spectral_subtraction_gain_by_hand():
    noisy = torch.tensor([4.0, 1.0, 2.0, 100.0])
    noise = torch.tensor([1.0, 2.0, 1.0, 0.0])
    gain = spectral.spectral_subtraction_gain(noisy, noise, over=1.0, floor=0.01)
    torch.testing.assert_close(gain, torch.tensor([0.75 ** 0.5, 0.1, 0.5 ** 0.5, 1.0]))
    gain2 = spectral.spectral_subtraction_gain(noisy, noise, over=2.0, floor=0.25)
    torch.testing.assert_close(gain2, torch.tensor([0.5 ** 0.5, 0.5, 0.5, 1.0]))
    with pytest.raises(ValueError, match="over"):
        spectral.spectral_subtraction_gain(noisy, noise, over=0.0)


def test_spectral_subtraction_recovers_a_tone_in_known_noise():
    n = torch.arange(16000, dtype=torch.float64)
    tone = torch.sin(2 * torch.pi * 1000 * n / 16000)
    noise = 0.3 * torch.randn(16000, generator=torch.Generator().manual_seed(1),
                              dtype=torch.float64)
    window = torch.hann_window(512, dtype=torch.float64)
    noisy_spec = spectral.stft(tone + noise, window, 128)
    noise_power = spectral.stft(noise, window, 128).abs().pow(2).mean(-1, keepdim=True)
    gain = spectral.spectral_subtraction_gain(noisy_spec.abs().pow(2), noise_power)
    enhanced = spectral.istft(gain * noisy_spec, window, 128, length=16000)

    def err(e):
        return float((e - tone).pow(2).sum() / tone.pow(2).sum())
    assert err(enhanced) < 0.5 * err(tone + noise)  # more than 3 dB less error


def test_ideal_ratio_mask_by_hand():
    clean = torch.tensor([3.0 + 0j, 0j, 1j, 0j])
    noise = torch.tensor([4.0 + 0j, 2.0 + 0j, 0j, 0j])
    irm = spectral.ideal_ratio_mask(clean, noise)
    torch.testing.assert_close(irm, torch.tensor([0.6, 0.0, 1.0, 0.0]))
    torch.testing.assert_close(spectral.ideal_ratio_mask(clean, noise, beta=1.0),
                               torch.tensor([0.36, 0.0, 1.0, 0.0]))


def test_ideal_ratio_mask_is_the_wiener_gain_when_beta_is_one():
    """For independent S and N the gain E[S^2]/(E[S^2]+E[N^2]) minimises the expected
    squared error; per bin, the IRM with beta = 1 applied to Y = S + N lowers the error
    below that of the noisy input on a random example."""
    gen = torch.Generator().manual_seed(2)
    s = torch.randn(200, dtype=torch.complex128, generator=gen)
    n = 0.7 * torch.randn(200, dtype=torch.complex128, generator=gen)
    irm = spectral.ideal_ratio_mask(s, n, beta=1.0)
    assert torch.all((irm >= 0) & (irm <= 1))
    assert (irm * (s + n) - s).abs().pow(2).sum() < n.abs().pow(2).sum()


def test_frame_linear_is_identity_at_start_and_uses_its_context():
    torch.manual_seed(0)
    model = spectral.FrameLinear(5, context=1)
    mag = torch.rand(2, 5, 7)
    torch.testing.assert_close(model(mag), mag)
    with torch.no_grad():  # a weight that copies the previous frame's bin 2 to bin 0
        model.linear.weight.zero_()
        model.linear.weight[0, 0 * 5 + 2] = 1.0
    out = model(mag)
    torch.testing.assert_close(out[:, 0, 1:], mag[:, 2, :-1])
    assert torch.all(out[:, 0, 0] == 0)  # zeros before the first frame
    with pytest.raises(ValueError, match="magnitudes"):
        model(torch.rand(2, 4, 7))


def test_frame_linear_matches_an_explicit_matrix_product():
    torch.manual_seed(1)
    model = spectral.FrameLinear(4, context=2)
    with torch.no_grad():
        model.linear.weight.normal_()
        model.linear.bias.normal_()
    mag = torch.rand(1, 4, 9, dtype=torch.float32)
    padded = torch.nn.functional.pad(mag[0], (2, 2))
    t = 4
    stacked = torch.cat([padded[:, t + k] for k in range(5)])  # offsets -2..2 at frame t
    expected = model.linear.weight @ stacked + model.linear.bias
    torch.testing.assert_close(model(mag)[0, :, t], expected)


def test_mask_cnn_shapes_range_scale_invariance_and_receptive_field():
    torch.manual_seed(0)
    model = spectral.MaskCNN(channels=(4, 4), dilations=(1, 3), eps=0.0)
    mag = torch.rand(2, 33, 40) + 0.1
    mask = model.mask(mag)
    assert mask.shape == mag.shape and torch.all((mask > 0) & (mask < 1))
    torch.testing.assert_close(model(mag), mask * mag)
    torch.testing.assert_close(model.mask(10 * mag), mask)  # a louder clip, the same mask
    assert model.receptive_field() == (7, 1 + 2 * (1 + 3 + 1))
    # measure the receptive field of the convolutions with autograd
    x = torch.rand(1, 2, 33, 40, requires_grad=True)
    model.net(x)[0, 0, 16, 20].backward()
    support = x.grad[0].abs().sum((0, 1)).nonzero()
    assert support.max() - support.min() + 1 == model.receptive_field()[1]
    support_f = x.grad[0].abs().sum((0, 2)).nonzero()
    assert support_f.max() - support_f.min() + 1 == model.receptive_field()[0]
    with pytest.raises(ValueError, match="dilation"):
        spectral.MaskCNN(channels=(4, 4), dilations=(1,))


def test_mask_cnn_features_are_level_free_and_relative_to_the_noise_floor():
    model = spectral.MaskCNN(channels=(2,), dilations=(1,), noise_fraction=0.2, eps=0.0)
    mag = torch.full((1, 3, 10), 10.0)  # power 100 ...
    mag[..., 4] = 1.0  # ... but in two quiet frames, power 1
    mag[..., 7] = 1.0
    feats = model.features(mag)
    expected_snr = torch.full((1, 3, 10), float(np.log(100.0)))
    expected_snr[..., [4, 7]] = 0.0
    torch.testing.assert_close(feats[:, 1], expected_snr)
    mean = (8 * np.log(100.0)) / 10
    torch.testing.assert_close(feats[:, 0], expected_snr - mean)


def test_enhancer_with_identity_returns_the_input_and_oracle_irm_improves():
    cfg = spectral.StftConfig(n_fft=256, hop=64)
    gen = torch.Generator().manual_seed(4)
    t = torch.arange(8000, dtype=torch.float64)
    clean = torch.sin(2 * torch.pi * 440 * t / 8000).reshape(1, 1, -1).repeat(2, 1, 1)
    noisy = clean + 0.5 * torch.randn(2, 1, 8000, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(spectral.Enhancer(torch.nn.Identity(), cfg)(noisy), noisy)
    err = lambda e: float((e - clean).pow(2).sum())  # noqa: E731
    assert err(spectral.oracle_irm(noisy, clean, cfg)) < 0.1 * err(noisy)


def test_spectral_subtraction_module_equals_the_gain_on_the_quietest_frames():
    mag = torch.rand(2, 9, 30, generator=torch.Generator().manual_seed(5)) + 0.1
    power = mag ** 2
    energy = power.sum(1)  # (2, 30); the 6 quietest frames of each clip
    quiet = energy <= energy.sort(-1).values[:, 5:6]
    noise = torch.stack([power[b][:, quiet[b]].mean(-1, keepdim=True) for b in range(2)])
    expected = torch.sqrt(torch.clamp(1 - 2.0 * noise / power, min=0.01, max=1)) * mag
    out = spectral.SpectralSubtraction(noise_fraction=0.2, over=2.0, floor=0.01)(mag)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("window, n_fft, fraction, cola", [
    ("hann", 256, 0.25, True), ("hann", 256, 0.5, False), ("rectangular", 512, 0.5, True),
    ("hann (symmetric)", 128, 0.25, False), ("hamming", 256, 0.5, False),
])
def test_stft_explorer_draws_and_reports_reconstruction(window, n_fft, fraction, cola):
    import matplotlib.pyplot as plt

    from labutils import plotting

    gen = torch.Generator().manual_seed(0)
    t = torch.arange(8000, dtype=torch.float64)
    clean = torch.sin(2 * torch.pi * 300 * t / 8000) * torch.hann_window(8000, dtype=torch.float64)
    noisy = clean + 0.3 * torch.randn(8000, generator=gen, dtype=torch.float64)
    fig = plt.figure()
    numbers = plotting.draw_stft_explorer(fig, noisy, clean, 8000, window, n_fft, fraction)
    assert len(fig.axes) == 3 and f"{numbers['irm_gain_db']:+.1f} dB" in fig.axes[2].get_title()
    plt.close(fig)
    assert numbers["wola_error_db"] < -200  # the normalised inverse is always exact
    assert (numbers["ola_error_db"] < -200) == cola  # plain overlap-add only under COLA of w^2
    if window == "hann" and fraction == 0.5:  # sin^4 + cos^4 swings from 1/2 to 1, mean 3/4
        assert numbers["cola_ripple"] == pytest.approx(0.5 / 0.75)
    assert numbers["irm_gain_db"] > 10  # the oracle mask cleans a tone in white noise
    with pytest.raises(ValueError, match="window"):
        plotting.stft_window("kaiser", 64)
