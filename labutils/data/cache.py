"""The download cache: where data lives, checksummed fetches, atomic writes."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Iterator

DATA_ENV = "LABUTILS_DATA"


class DataUnavailableError(RuntimeError):
    """A data set could not be fetched (no network, a moved URL, a refused request)."""


class ChecksumError(RuntimeError):
    """A downloaded or cached file does not have the expected SHA-256."""


def cache_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The cache folder: ``data_dir`` if given (a notebook's ``DATA_DIR``), else
    ``$LABUTILS_DATA``, else the user cache (``~/.cache/labutils`` on Linux). Created."""
    if data_dir is not None and str(data_dir) != "":
        path = pathlib.Path(data_dir)
    elif os.environ.get(DATA_ENV):
        path = pathlib.Path(os.environ[DATA_ENV])
    else:
        import pooch

        path = pathlib.Path(pooch.os_cache("labutils"))
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside ``target``; move it into place only if the block
    finishes. A file or a folder may be written there. On error nothing is left behind."""
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp = tmp_dir / target.name
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written for {target}")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def cached(name: str, write: Callable[[pathlib.Path], None],
           data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Return ``<cache>/<name>``, calling ``write(path)`` to make it first if it is missing.

    ``write`` gets a temporary path (file or folder) that is moved into place atomically,
    so an interrupted generation leaves nothing half-written; later calls are free.
    """
    target = cache_dir(data_dir) / name
    if not target.exists():
        with atomic_path(target) as tmp:
            write(tmp)
    return target


def fetch(dataset: str, url: str, sha256: str | None, filename: str | None = None,
          data_dir: str | os.PathLike | None = None,
          offline_hint: str = "DATASET = 'generated'", downloader=None) -> pathlib.Path:
    """Download ``url`` into the cache once, checking its SHA-256, and return the path.

    A download goes to a temporary file that is moved into place only when complete and
    verified. Where a source publishes another hash, pass it with its algorithm, e.g.
    ``"md5:<hex>"``. Failures raise :class:`DataUnavailableError` (naming the data set, the
    URL and ``offline_hint``, the parameter that switches to generated data) or
    :class:`ChecksumError`. ``downloader`` is passed to pooch (for mirrors and tests).
    """
    import pooch

    folder = cache_dir(data_dir)
    filename = filename or url.rstrip("/").split("/")[-1]
    known_hash = None if not sha256 else sha256 if ":" in sha256 else f"sha256:{sha256}"
    try:
        path = pooch.retrieve(url, known_hash, fname=filename, path=folder,
                              downloader=downloader, progressbar=False)
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        kind = "checksum" if ":" in sha256 else "SHA-256"
        raise ChecksumError(
            f"{dataset}: the file from {url} does not match its {kind} {sha256}; it was not "
            "kept. Try again later, or report the changed file."
        ) from err
    except Exception as err:  # network, HTTP and OS errors alike
        raise DataUnavailableError(
            f"{dataset} could not be downloaded from {url} ({type(err).__name__}: {err}). "
            f"Without network, set {offline_hint} in the parameters cell to use generated "
            f"data in the same format, or put the file at {folder / filename}."
        ) from err
    return pathlib.Path(path)
