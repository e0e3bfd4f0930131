import numpy as np
import pytest
import torch

from labutils import audio


def test_snr_matches_the_closed_form():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(4000)
    noise = rng.standard_normal(4000)
    noise *= np.sqrt(np.sum(clean**2) / np.sum(noise**2)) * 10 ** (-12.5 / 20)
    assert float(audio.snr_db(clean, clean + noise)) == pytest.approx(12.5, abs=1e-9)


def test_snr_is_batched_over_leading_axes():
    clean = torch.ones(2, 3, 100, dtype=torch.float64)
    est = clean * torch.tensor([0.9, 0.5, 0.0], dtype=torch.float64)[None, :, None]
    expected = -20 * torch.log10(torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64))
    torch.testing.assert_close(audio.snr_db(clean, est), expected.expand(2, 3), atol=1e-6, rtol=0)


def test_si_sdr_is_scale_invariant_with_a_known_value():
    rng = np.random.default_rng(1)
    s = rng.standard_normal(8000)
    s -= s.mean()
    e = rng.standard_normal(8000)
    e -= e.mean()
    e -= (e @ s) / (s @ s) * s  # orthogonal to s
    e *= np.linalg.norm(s) / np.linalg.norm(e) * 10 ** (-7 / 20)  # 7 dB below s
    for scale in (1.0, 0.01, 30.0):
        assert float(audio.si_sdr_db(s, scale * (s + e))) == pytest.approx(7.0, abs=1e-8)


def test_shape_mismatch_and_empty_signals_are_errors():
    with pytest.raises(ValueError, match="differ"):
        audio.snr_db(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="empty"):
        audio.si_sdr_db(np.ones(0), np.ones(0))


def test_spectrogram_peaks_at_a_sine():
    sr, f = 8000, 1000.0
    x = np.sin(2 * np.pi * f * np.arange(sr) / sr)
    spec = audio.spectrogram_db(x, n_fft=256, hop=64)
    assert spec.shape == (129, sr // 64 + 1)
    assert spec.max() == 0.0 and spec.min() >= -80.0
    assert np.argmax(spec[:, 50]) == round(f / sr * 256)


def test_vowel_has_its_pitch_and_formants():
    sr = 16000
    x = audio.vowel("i", f0=150.0, duration=0.5, sr=sr, jitter=0.0)
    assert x.dtype == np.float32 and x.shape == (8000,) and np.max(np.abs(x)) == pytest.approx(0.9)
    spectrum = np.abs(np.fft.rfft(x[2000:6000] * np.hanning(4000)))
    freqs = np.fft.rfftfreq(4000, 1 / sr)
    band = (freqs > 100) & (freqs < 400)
    assert abs(freqs[band][np.argmax(spectrum[band])] - 150) < 15  # within the pitch glide
    high = (freqs > 1500) & (freqs < 3500)
    assert 2000 < freqs[high][np.argmax(spectrum[high])] < 3300  # F2/F3 of /i/


def test_glottal_source_pulse_spacing_and_errors():
    pulses = audio.glottal_source(100.0, 1600, 16000)
    impulses = np.flatnonzero(np.diff(np.sign(np.diff(pulses))) < 0)
    assert np.all(np.abs(np.diff(impulses)[1:] - 160) <= 1)
    with pytest.raises(ValueError, match="f0"):
        audio.glottal_source(0.0, 10, 16000)
    with pytest.raises(ValueError, match="vowel"):
        audio.vowel("y")
    with pytest.raises(ValueError, match="formant"):
        audio.formant_filter(np.ones(10), [9000], 16000)


def test_chirp_sweeps_upwards():
    x = audio.chirp(200, 2000, duration=1.0, sr=8000, method="linear")
    zero_crossings = np.flatnonzero(np.diff(np.signbit(x)))
    first, last = np.diff(zero_crossings[:5]).mean(), np.diff(zero_crossings[-5:]).mean()
    assert first == pytest.approx(8000 / 200 / 2, rel=0.1)
    assert last == pytest.approx(8000 / 2000 / 2, rel=0.15)


def test_snr_and_si_sdr_agree_with_torchmetrics():
    metrics = pytest.importorskip("torchmetrics.functional.audio",
                                  reason="torchmetrics (a test extra) is not installed")
    g = torch.Generator().manual_seed(2)
    clean = torch.randn(3, 4000, generator=g, dtype=torch.float64)
    estimate = 0.7 * clean + 0.3 * torch.randn(3, 4000, generator=g, dtype=torch.float64)
    torch.testing.assert_close(audio.snr_db(clean, estimate),
                               metrics.signal_noise_ratio(estimate, clean))
    torch.testing.assert_close(
        audio.si_sdr_db(clean, estimate),
        metrics.scale_invariant_signal_distortion_ratio(estimate, clean, zero_mean=True))
