"""The denoising data: the generator's format, determinism and noise, and the loader's
safe loading and its errors on bad files."""

import pathlib

import numpy as np
import pytest
import torch

from labutils.audio import snr_db
from labutils.data import denoising as dn


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    return dn.generate(3, "white", (0.0, 10.0), seed=1, data_dir=tmp_path_factory.mktemp("a"))


def test_generated_file_has_the_lab_format(small_file):
    data = torch.load(small_file, weights_only=True)
    assert isinstance(data, list) and len(data) == 3
    for pair in data:
        assert len(pair) == 2
        for v in pair:
            assert v.dtype == torch.float32 and tuple(v.shape) == (1, 32000)
    pairs = dn.load(small_file)
    assert pairs.noisy.shape == pairs.clean.shape == (3, 1, 32000)
    torch.testing.assert_close(pairs.noisy[2], data[2][0])  # x is the noisy one
    torch.testing.assert_close(pairs.clean[2], data[2][1])


def test_snr_lies_in_the_range(small_file):
    pairs = dn.load(small_file)
    snr = snr_db(pairs.clean, pairs.noisy)
    assert torch.all(snr > -0.01) and torch.all(snr < 10.01), snr
    assert snr.std() > 0.1  # drawn, not fixed


def test_generation_is_seeded_and_cached(tmp_path, small_file):
    again = dn.generate(3, "white", (0.0, 10.0), seed=1, data_dir=tmp_path)
    assert again != small_file
    a, b = dn.load(small_file), dn.load(again)
    assert torch.equal(a.noisy, b.noisy) and torch.equal(a.clean, b.clean)
    stamp = again.stat().st_mtime_ns
    assert dn.generate(3, "white", (0.0, 10.0), seed=1, data_dir=tmp_path) == again
    assert again.stat().st_mtime_ns == stamp  # reused, not rewritten
    other = dn.load(dn.generate(3, "white", (0.0, 10.0), seed=2, data_dir=tmp_path))
    assert not torch.equal(a.clean, other.clean)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".locks"]


def test_a_failed_generation_leaves_no_file(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(dn, "make_pair", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        dn.generate(2, data_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [".locks"]  # the lock files only


def test_clean_signal_is_voiced_speech_like():
    y = dn.speech_like(rng=0)
    assert y.shape == (32000,) and np.isclose(np.abs(y).max(), 1.0)
    power = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(y.size, 1 / 32000)
    assert power[freqs < 4000].sum() > 0.9 * power.sum()  # speech energy is low
    frames = y[: 32000 // 320 * 320].reshape(-1, 320)
    assert (np.abs(frames).max(1) < 0.01).mean() > 0.05  # pauses between syllables


def _band_power(x, low, high):
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / 32000)
    return power[(freqs >= low) & (freqs < high)].sum() / power.sum()


@pytest.mark.parametrize("kind", ["white", "pink", "hum", "band", "clicks", "mixed"])
def test_noise_has_unit_power(kind):
    assert np.isclose(np.mean(dn.noise(kind, rng=3) ** 2), 1.0)


def test_noise_spectra():
    assert 0.2 < _band_power(dn.noise("white", rng=0), 0, 4000) < 0.3  # flat: a quarter
    pink = dn.noise("pink", rng=0)
    assert _band_power(pink, 10, 100) > 5 * _band_power(pink, 1000, 1090)  # falls as 1/f
    hum = dn.noise("hum", rng=0)
    on_harmonics = max(
        sum(_band_power(hum, 0.99 * k * f - 3, 1.01 * k * f + 3) for k in range(1, 16))
        for f in (50, 60)
    )
    assert on_harmonics > 0.9  # lines at the mains frequency and its harmonics
    assert max(_band_power(dn.noise("band", rng=s), 0, 100) for s in range(5)) < 0.01
    clicks = dn.noise("clicks", rng=0)
    loud = np.abs(clicks) > 1.0  # above the noise's own RMS
    assert loud.mean() < 0.02  # impulsive: a few samples carry the power
    assert (clicks[loud] ** 2).sum() > 0.8 * (clicks ** 2).sum()
    assert np.mean(clicks ** 4) / np.mean(clicks ** 2) ** 2 > 20  # kurtosis; Gaussian: 3


def test_generator_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="not one of"):
        dn.generate(2, "brown", data_dir=tmp_path)
    with pytest.raises(ValueError, match="low <= high"):
        dn.generate(2, snr_range=(10, 0), data_dir=tmp_path)
    with pytest.raises(ValueError, match="at least 1"):
        dn.generate(0, data_dir=tmp_path)


def test_lab_file_is_found_in_the_cache(tmp_path, small_file):
    with pytest.raises(FileNotFoundError, match="DATASET = 'generated'"):
        dn.lab_file(tmp_path)
    (tmp_path / dn.LAB_FILE).write_bytes(small_file.read_bytes())
    assert dn.load(dn.lab_file(tmp_path)).noisy.shape == (3, 1, 32000)


def _save(tmp_path, obj) -> pathlib.Path:
    path = tmp_path / "bad.pt"
    torch.save(obj, path)
    return path


def _pair(n=32000, dtype=torch.float32):
    return (torch.zeros(1, n, dtype=dtype), torch.zeros(1, n, dtype=dtype))


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "got an empty list"),
        ((), "got an empty tuple"),
        ({"x": torch.zeros(1)}, "got a dict"),
        (torch.tensor(1.0), "got a Tensor"),
        ([_pair(16000)], "32000 Hz"),
        ([(torch.zeros(32000), torch.zeros(32000))], r"expected \[1, 32000\]"),
        ([_pair(dtype=torch.int16)], "dtype torch.int16"),
        ([_pair(dtype=torch.complex64)], "real floating"),
        ([_pair(), (torch.zeros(1, 32000),)], "pair 1: expected a pair"),
        ([(torch.full((1, 32000), float("nan")), torch.zeros(1, 32000))], "NaN"),
    ],
)
def test_loader_rejects_bad_files(tmp_path, obj, message):
    with pytest.raises(ValueError, match=message):
        dn.load(_save(tmp_path, obj))


def test_loader_rejects_an_empty_or_missing_file(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a safe file of tensors"):
        dn.load(empty)
    with pytest.raises(FileNotFoundError, match="no data file"):
        dn.load(tmp_path / "missing.pt")


class _Payload:
    """Unpickling this would run code: it must be refused, not run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_loader_never_executes_code(tmp_path):
    marker = tmp_path / "code_ran"
    path = _save(tmp_path, [_pair(), _Payload(marker)])
    assert not marker.exists()
    with pytest.raises(ValueError, match="not a safe file of tensors"):
        dn.load(path)
    assert not marker.exists()


def test_float64_pairs_are_accepted_as_float32(tmp_path):
    pairs = dn.load(_save(tmp_path, [_pair(dtype=torch.float64)]))
    assert pairs.noisy.dtype == torch.float32


def test_split_is_a_seeded_partition_in_the_order_test_val_train():
    noisy = torch.arange(20.0).reshape(20, 1, 1)
    data = dn.Pairs(noisy, -noisy)
    parts = dn.split(data, n_val=3, n_test=5, seed=7)
    assert [len(parts[k].noisy) for k in ("test", "val", "train")] == [5, 3, 12]
    ids = torch.cat([parts[k].noisy.flatten() for k in ("test", "val", "train")])
    assert sorted(ids.tolist()) == list(range(20))  # every pair exactly once
    assert torch.equal(parts["val"].clean, -parts["val"].noisy)  # pairs stay together
    expected = torch.randperm(20, generator=torch.Generator().manual_seed(7))
    assert ids.long().tolist() == expected.tolist()
    with pytest.raises(ValueError, match="keep some for training"):
        dn.split(data, n_val=10, n_test=10)
# The lab's file is read as ``dataB[q] -> (x, y)``, ``len(dataB) == Q``; its container is not
# documented. Each container such code could have been written with, saved as it would be:


def _lab_like(q=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    noisy = torch.randn(q, 1, 32000, generator=gen)
    return noisy, noisy + torch.randn(q, 1, 32000, generator=gen)


@pytest.mark.parametrize("container", ["list", "tuple", "TensorDataset"])
def test_loader_reads_each_container_the_lab_file_may_use(tmp_path, container):
    from torch.utils.data import TensorDataset

    noisy, clean = _lab_like()
    pairs = [(noisy[q], clean[q]) for q in range(len(noisy))]
    obj = {"list": pairs, "tuple": tuple(pairs),
           "TensorDataset": TensorDataset(noisy, clean)}[container]
    assert len(obj) == 4 and obj[2][0].shape == (1, 32000)  # what the lab's code relies on
    path = tmp_path / dn.LAB_FILE
    torch.save(obj, path)
    loaded = dn.load(path)
    assert torch.equal(loaded.noisy, noisy) and torch.equal(loaded.clean, clean)


def test_loader_never_falls_back_to_unsafe_loading(tmp_path, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    from torch.utils.data import Subset

    noisy, clean = _lab_like(2)
    path = _save(tmp_path, Subset([(noisy[0], clean[0])], [0]))  # random_split's output
    with pytest.raises(ValueError, match="TensorDataset"):
        dn.load(path)
    assert calls == [True]


@pytest.mark.parametrize(("tensors", "message"), [
    ((torch.zeros(3, 1, 32000),), "expected two"),
    ((torch.zeros(3, 1, 32000), torch.zeros(2, 1, 32000)), "expected two"),
    ((torch.zeros(3, 32000), torch.zeros(3, 32000)), r"expected \[1, 32000\]"),
])
def test_loader_explains_a_wrong_tensor_dataset(tmp_path, tensors, message):
    from torch.utils.data import TensorDataset

    data = TensorDataset(*tensors[:1]) if len(tensors) == 1 else TensorDataset(tensors[0],
                                                                                tensors[0])
    data.tensors = tensors  # as a file written from other code may hold
    with pytest.raises(ValueError, match=message):
        dn.load(_save(tmp_path, data))
