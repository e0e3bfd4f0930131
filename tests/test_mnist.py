import gzip
import hashlib
import shutil
import struct

import numpy as np
import pytest

from labutils.data import ChecksumError, DataUnavailableError, digits, mnist


def _idx_bytes(array):
    """The IDX format written out by hand from its specification (independent of write_idx):
    0x00 0x00, type 0x08 (unsigned byte), ndim, big-endian uint32 sizes, row-major data."""
    head = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return head + array.astype(np.uint8).tobytes(order="C")


def _small_mnist(folder, n_train=12, n_test=5, seed=0):
    """Small gzipped IDX files named like the real ones; returns arrays and SHA-256s."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    sums = {}
    for name, array in arrays.items():
        mnist.write_idx(folder / name, array)
        sums[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    return arrays, sums


def test_write_idx_is_the_format_of_the_specification(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    mnist.write_idx(tmp_path / "a.gz", array)
    with gzip.open(tmp_path / "a.gz", "rb") as f:
        assert f.read() == _idx_bytes(array)


def test_read_idx_reads_hand_written_files(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    (tmp_path / "i.gz").write_bytes(gzip.compress(_idx_bytes(images)))
    (tmp_path / "l").write_bytes(_idx_bytes(labels))  # not gzipped
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "i.gz"), images)
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "l"), labels)


@pytest.mark.parametrize("damage", ["truncated data", "truncated header", "bad magic",
                                    "cut gzip", "extra bytes"])
def test_read_idx_refuses_corrupt_files(tmp_path, damage):
    raw = _idx_bytes(np.ones((4, 28, 28), dtype=np.uint8))
    path = tmp_path / "bad-idx3-ubyte.gz"
    if damage == "truncated data":
        path.write_bytes(gzip.compress(raw[:-100]))
    elif damage == "truncated header":
        path.write_bytes(gzip.compress(raw[:9]))
    elif damage == "bad magic":
        path.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + raw[4:]))  # float type code
    elif damage == "cut gzip":
        path.write_bytes(gzip.compress(raw)[:-30])
    else:
        path.write_bytes(gzip.compress(raw + b"\x00"))
    with pytest.raises(ValueError, match="bad-idx3-ubyte.gz"):
        mnist.read_idx(path)


def _copying_downloader(source):
    def download(url, output_file, pooch):
        shutil.copy(source / url.rsplit("/", 1)[-1], output_file)
    return download


def test_load_fetches_checks_and_parses(tmp_path, monkeypatch):
    source, cache = tmp_path / "server", tmp_path / "cache"
    source.mkdir()
    arrays, sums = _small_mnist(source)
    monkeypatch.setattr(mnist, "FILES", sums)
    data = mnist.load(cache, base_url="https://example.org/mnist/",
                      downloader=_copying_downloader(source))
    assert data["x"].shape == (12, 28, 28) and data["x"].dtype == np.float32
    assert data["y_test"].shape == (5,) and data["y_test"].dtype == np.int64
    np.testing.assert_allclose(data["x"], arrays["train-images-idx3-ubyte.gz"] / 255.0)
    np.testing.assert_array_equal(data["y"], arrays["train-labels-idx1-ubyte.gz"])
    assert 0.0 <= data["x_test"].min() and data["x_test"].max() <= 1.0
    # a second call reads the cache and does not download
    def refuse(url, output_file, pooch):
        raise AssertionError(f"downloaded {url} again")
    mnist.load(cache, base_url="https://example.org/mnist/", downloader=refuse)


def test_load_refuses_a_file_with_the_wrong_checksum(tmp_path, monkeypatch):
    source, cache = tmp_path / "server", tmp_path / "cache"
    source.mkdir()
    _, sums = _small_mnist(source)
    sums["t10k-labels-idx1-ubyte.gz"] = "0" * 64
    monkeypatch.setattr(mnist, "FILES", sums)
    with pytest.raises(ChecksumError, match="SHA-256"):
        mnist.load(cache, base_url="https://example.org/mnist/",
                   downloader=_copying_downloader(source))
    assert not (cache / "t10k-labels-idx1-ubyte.gz").exists()


def test_load_offline_says_what_to_do_in_one_line(tmp_path):
    def offline(url, output_file, pooch):
        raise ConnectionError("no network")
    with pytest.raises(DataUnavailableError) as info:
        mnist.load(tmp_path, downloader=offline)
    message = str(info.value)
    assert "\n" not in message
    assert "MNIST" in message and "DATASET = 'mnist1d'" in message


def test_the_real_checksums_are_well_formed():
    assert len(mnist.FILES) == 4
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in mnist.FILES.values())


def test_digits_split_is_stratified_and_scaled():
    from sklearn.datasets import load_digits

    data = digits.load(test_fraction=0.25, seed=0)
    n = len(load_digits().target)
    assert len(data["y"]) + len(data["y_test"]) == n
    assert data["x"].shape[1:] == (8, 8) and data["x"].dtype == np.float32
    assert data["x"].max() == 1.0 and data["x"].min() == 0.0
    counts = np.bincount(data["y_test"], minlength=10) / np.bincount(
        np.concatenate([data["y"], data["y_test"]]), minlength=10)
    assert np.all(np.abs(counts - 0.25) < 0.02)
    again = digits.load(test_fraction=0.25, seed=0)
    np.testing.assert_array_equal(again["y_test"], data["y_test"])
