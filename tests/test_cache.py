import hashlib
import pathlib

import pytest

from labutils.data import (
    ChecksumError,
    DataUnavailableError,
    atomic_path,
    cache_dir,
    cached,
    fetch,
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
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


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
