import hashlib
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from labutils import paths
from labutils.data import (
    ChecksumError,
    DamagedFileError,
    DataUnavailableError,
    atomic_path,
    cache_dir,
    cached,
    check_arrays,
    fetch,
    safe_torch_load,
)

PAYLOAD = b"EDF data, or any other bytes" * 100
SHA = hashlib.sha256(PAYLOAD).hexdigest()
URL = "https://example.org/data/record.edf"


def _serve(payload: bytes, fail_after: int | None = None):
    """A pooch downloader that writes ``payload`` and, optionally, dies part-way."""

    def download(url, output_file, pooch_obj, check_only=False):
        data = payload if fail_after is None else payload[:fail_after]
        if isinstance(output_file, (str, pathlib.Path)):
            pathlib.Path(output_file).write_bytes(data)
        else:
            output_file.write(data)
        if fail_after is not None:
            raise ConnectionResetError("connection reset by peer")

    return download


def _files(folder: pathlib.Path) -> list[str]:
    """The files and folders under ``folder``, without the cache's lock files."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.relative_to(folder).parts[0] != ".locks")


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("LABUTILS_DATA", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert (tmp_path / "arg").is_dir()
    monkeypatch.delenv("LABUTILS_DATA")
    assert cache_dir().name == "labutils"


def test_fetch_downloads_once_and_verifies(tmp_path):
    path = fetch("Demo", URL, SHA, data_dir=tmp_path, downloader=_serve(PAYLOAD))
    assert path == tmp_path / "record.edf" and path.read_bytes() == PAYLOAD

    def refuse(*args, **kwargs):
        raise AssertionError("a cached, verified file must not be downloaded again")

    assert fetch("Demo", URL, SHA, data_dir=tmp_path, downloader=refuse) == path


def test_checksum_mismatch_is_clear_and_leaves_no_file(tmp_path):
    with pytest.raises(ChecksumError, match="Demo.*SHA-256"):
        fetch("Demo", URL, "0" * 64, data_dir=tmp_path, downloader=_serve(PAYLOAD))
    assert _files(tmp_path) == []


def test_interrupted_download_leaves_no_file(tmp_path):
    with pytest.raises(DataUnavailableError):
        fetch("Demo", URL, SHA, data_dir=tmp_path, downloader=_serve(PAYLOAD, fail_after=10))
    assert _files(tmp_path) == []


def test_offline_error_names_dataset_url_and_switch(tmp_path):
    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    with pytest.raises(DataUnavailableError) as info:
        fetch("Sleep-EDF", URL, SHA, data_dir=tmp_path, downloader=offline,
              offline_hint="DATASET = 'generated'")
    message = str(info.value)
    assert "Sleep-EDF" in message and URL in message and "DATASET = 'generated'" in message
    assert _files(tmp_path) == []


def test_cached_generates_once_atomically(tmp_path):
    calls = []

    def write(path):
        calls.append(path)
        path.write_text("pairs")

    first = cached("pairs.pt", write, data_dir=tmp_path)
    second = cached("pairs.pt", write, data_dir=tmp_path)
    assert first == second == tmp_path / "pairs.pt" and first.read_text() == "pairs"
    assert len(calls) == 1 and calls[0] != first


def test_failed_generation_leaves_nothing(tmp_path):
    def write(path):
        path.mkdir()
        (path / "half.wav").write_bytes(b"RIFF")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached("daps", write, data_dir=tmp_path)
    assert _files(tmp_path) == []


def test_atomic_path_replaces_a_folder_and_requires_output(tmp_path):
    target = tmp_path / "folder"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert _files(tmp_path) == ["folder", "folder/new.txt"]
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_path(tmp_path / "empty"):
            pass
    assert not (tmp_path / "empty").exists()


def _npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


GOOD = {"x": np.zeros((3, 4), np.float32), "y": np.arange(3)}
LAYOUT = check_arrays({"x": ((None, 4), "float32"), "y": ((None,), "int64")})


@pytest.mark.parametrize(
    "damage",
    [lambda p: p.write_bytes(p.read_bytes()[:50]),                      # truncated
     lambda p: _npz(p, x=np.full((3, 4), np.nan, np.float32), y=np.arange(3)),  # NaN
     lambda p: _npz(p, x=np.zeros((3, 5), np.float32), y=np.arange(3)),  # wrong shape
     lambda p: _npz(p, x=np.zeros((3, 4)), y=np.arange(3)),              # wrong dtype
     lambda p: _npz(p, inputs=np.zeros((3, 4), np.float32), y=np.arange(3))],  # wrong keys
    ids=["truncated", "nan", "shape", "dtype", "keys"],
)
def test_a_damaged_generated_file_is_regenerated(tmp_path, damage):
    calls = []

    def write(path):
        calls.append(1)
        _npz(path, **GOOD)

    path = cached("arrays.npz", write, data_dir=tmp_path, validate=LAYOUT)
    damage(path)
    with pytest.warns(UserWarning, match="arrays.npz is damaged"):
        assert cached("arrays.npz", write, data_dir=tmp_path, validate=LAYOUT) == path
    assert len(calls) == 2
    with np.load(path) as f:
        np.testing.assert_array_equal(f["x"], GOOD["x"])


def test_a_generator_that_writes_bad_data_is_an_error(tmp_path):
    with pytest.raises(DamagedFileError, match="bug in the generator"):
        cached("bad.npz", lambda p: _npz(p, x=np.zeros(2)), data_dir=tmp_path, validate=LAYOUT)
    assert _files(tmp_path) == []


def test_a_damaged_download_is_refused_with_its_name_and_the_remedy(tmp_path):
    path = tmp_path / "record.edf"
    for downloader in (_serve(b"not an npz"), None):  # downloaded now, then found in the cache
        with pytest.raises(DamagedFileError) as info:
            fetch("Demo", URL, None, data_dir=tmp_path, downloader=downloader, validate=LAYOUT)
        assert str(path) in str(info.value) and f"rm -r '{path}'" in str(info.value)


def test_a_cached_download_that_lost_its_checksum_is_fetched_again(tmp_path):
    path = fetch("Demo", URL, SHA, data_dir=tmp_path, downloader=_serve(PAYLOAD))
    path.write_bytes(PAYLOAD[:100])  # damaged on disk
    assert fetch("Demo", URL, SHA, data_dir=tmp_path, downloader=_serve(PAYLOAD)) == path
    assert path.read_bytes() == PAYLOAD


def test_a_refused_pickle_names_the_global_not_the_unsafe_workaround(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"layer": torch.nn.Linear(1, 1)}, path)
    with pytest.raises(DamagedFileError) as info:
        safe_torch_load(path)
    message = str(info.value)
    assert "torch.nn.modules.linear.Linear" in message and str(path) in message
    assert "weights_only" not in message
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DamagedFileError, match="truncated"):
        safe_torch_load(path)


WRITER = """
import pathlib, sys, time
from labutils.data import cached

log = pathlib.Path(sys.argv[2])
def write(path):
    with log.open("a") as f:
        f.write("write\\n")
    path.mkdir()
    (path / "a.txt").write_text("a")
    time.sleep(float(sys.argv[3]))
    (path / "b.txt").write_text("b")

path = cached("folder", write, data_dir=sys.argv[1])
print(sorted(p.name for p in path.iterdir()))
"""


def _writers(tmp_path, count, pause):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    cmd = [sys.executable, str(script), str(tmp_path / "cache"), str(tmp_path / "log"), str(pause)]
    return [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=paths.ROOT) for _ in range(count)]


def test_processes_generating_one_folder_at_once_take_turns(tmp_path):
    outputs = [p.communicate(timeout=180) for p in _writers(tmp_path, 3, 2.0)]
    assert all(out.strip() == "['a.txt', 'b.txt']" for out, _ in outputs), outputs
    assert (tmp_path / "log").read_text() == "write\n"


def test_the_temporary_folder_of_a_killed_writer_is_removed(tmp_path):
    (writer,) = _writers(tmp_path, 1, 600)
    deadline = time.monotonic() + 120
    while not (tmp_path / "log").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    writer.kill()
    writer.communicate()
    assert list((tmp_path / "cache").glob(".folder.tmp-*"))  # what the killed writer left
    cached("folder", lambda p: p.mkdir(), data_dir=tmp_path / "cache")
    assert _files(tmp_path / "cache") == ["folder"]


def test_a_data_folder_that_cannot_be_used_names_the_variable(tmp_path, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("")
    monkeypatch.setenv("LABUTILS_DATA", str(a_file))
    with pytest.raises(NotADirectoryError, match=f"LABUTILS_DATA points at {a_file}"):
        cache_dir()
    monkeypatch.setenv("LABUTILS_DATA", str(a_file / "below"))
    with pytest.raises(NotADirectoryError, match="LABUTILS_DATA"):
        cache_dir()
    monkeypatch.setenv("LABUTILS_DATA", str(tmp_path / "cache"))

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pathlib.Path, "mkdir", refuse)
    with pytest.raises(OSError, match="cannot be created .Permission denied.; set LABUTILS_DATA"):
        cache_dir()
