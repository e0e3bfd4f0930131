"""labutils.data.sines: shapes, labels consistent with the signal, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from labutils.ctc import collapse
from labutils.data.sines import FREQS, make_sine_segments


def test_shapes_and_targets():
    data = make_sine_segments(20, length=120, segment_length=(10, 30), seed=3)
    assert data.x.shape == (20, 1, 120) and data.x.dtype == torch.float32
    assert data.frame_labels.shape == (20, 120)
    assert len(data) == 20 and len(data.dataset()) == 20
    for i in range(20):
        target = data.target(i)
        # the class sequence is the frame labels with runs merged; no class repeats
        assert target == [k for k in collapse(data.frame_labels[i].tolist(), blank=0)]
        assert all(a != b for a, b in zip(target, target[1:], strict=False))
        assert set(target) <= {1, 2, 3}
        runs = np.diff(np.flatnonzero(np.diff(data.frame_labels[i].numpy())))
        assert (runs >= 10).all()
    assert (data.targets[torch.arange(data.targets.shape[1]) >= data.target_lengths[:, None]]
            == 0).all()


def test_each_segment_is_a_sine_of_its_class_frequency():
    data = make_sine_segments(4, length=400, segment_length=(120, 200), noise=0.0, seed=0)
    for i in range(4):
        labels = data.frame_labels[i].numpy()
        cls = labels[0]
        seg = data.x[i, 0, : np.argmax(labels != cls) or None].numpy()
        spectrum = np.abs(np.fft.rfft(seg * np.hanning(seg.size), 4096))
        peak = np.fft.rfftfreq(4096)[spectrum.argmax()]
        assert abs(peak - FREQS[cls - 1]) < 0.01


def test_seeded_and_noise_level():
    a = make_sine_segments(5, seed=7)
    b = make_sine_segments(5, seed=7)
    c = make_sine_segments(5, seed=8)
    assert torch.equal(a.x, b.x) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.x, c.x)
    clean = make_sine_segments(50, noise=0.0, seed=1).x
    assert clean.abs().max() <= 1.0
    assert abs(clean.pow(2).mean().item() - 0.5) < 0.05


def test_bad_arguments():
    with pytest.raises(ValueError, match="segment_length"):
        make_sine_segments(2, length=10, segment_length=(20, 30))
    with pytest.raises(ValueError, match="frequencies"):
        make_sine_segments(2, freqs=(0.1, 0.7))
    with pytest.raises(ValueError, match="two classes"):
        make_sine_segments(2, freqs=(0.1,))


def test_segments_cover_the_sequence_in_target_order():
    data = make_sine_segments(5, length=120, segment_length=(10, 30), seed=3)
    for i in range(len(data)):
        segs = data.segments(i)
        assert segs[0][0] == 0 and segs[-1][1] == 120
        assert all(b == a2 for (_, b, _), (a2, _, _) in itertools.pairwise(segs))
        assert [k for _, _, k in segs] == data.target(i)
        for a, b, k in segs:
            assert (data.frame_labels[i, a:b] == k).all()
