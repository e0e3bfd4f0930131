"""The download cache: where data lives, checksummed fetches, atomic writes, and checks
that a cached file is still the data it should be before it is used."""

from __future__ import annotations

import contextlib
import os
import pathlib
import pickle
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator

DATA_ENV = "LABUTILS_DATA"
_TMP = ".tmp-"  # temporary siblings of a target are named .<target>.tmp-*
LOCKS = ".locks"  # the cache's lock files (they stay: removing one while held is unsafe)

Validator = Callable[[pathlib.Path], object]


class DataUnavailableError(RuntimeError):
    """A data set could not be fetched (no network, a moved URL, a refused request)."""


class ChecksumError(RuntimeError):
    """A downloaded or cached file does not have the expected SHA-256."""


class DamagedFileError(ValueError):
    """A file is not the data it should be (truncated, wrong content, refused on loading)."""


def cache_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The cache folder: ``data_dir`` if given (a notebook's ``DATA_DIR``), else
    ``$LABUTILS_DATA``, else the user cache (``~/.cache/labutils`` on Linux). Created."""
    if data_dir is not None and str(data_dir) != "":
        path, source = pathlib.Path(data_dir), "DATA_DIR"
    elif os.environ.get(DATA_ENV):
        path, source = pathlib.Path(os.environ[DATA_ENV]), DATA_ENV
    else:
        import pooch

        path, source = pathlib.Path(pooch.os_cache("labutils")), "the user cache"
    path = path.expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(
            f"{source} points at {path}, which is a file, not a folder; set {source} to a "
            "folder for the data cache") from None
    except OSError as err:
        raise OSError(
            f"the data cache folder {path} (from {source}) cannot be created "
            f"({err.strerror or err}); set {source} to a folder you can write to") from None
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside ``target``; move it into place only if the block
    finishes. A file or a folder may be written there. On error nothing is left behind."""
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}{_TMP}", dir=target.parent))
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


def _remove(path: pathlib.Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _problem(path: pathlib.Path, validate: Validator | None) -> str | None:
    """Why ``path`` cannot be used (missing, or refused by ``validate``), else None."""
    if not path.exists():
        return "missing"
    if validate is None:
        return None
    try:
        validate(path)
    except Exception as err:  # any failure to read or check it: the file is not usable
        return f"{type(err).__name__}: {err}"
    return None


def cached(name: str, write: Callable[[pathlib.Path], None],
           data_dir: str | os.PathLike | None = None,
           validate: Validator | None = None) -> pathlib.Path:
    """Return ``<cache>/<name>``, calling ``write(path)`` to make it first if it is missing.

    ``write`` gets a temporary path (file or folder) that is moved into place atomically,
    so an interrupted generation leaves nothing half-written; later calls are free.
    ``validate(path)`` (optional; e.g. the data set's own loader) raises if a file is not
    the expected data: a cached file it refuses is regenerated, and a freshly written one
    it refuses is an error. Processes that ask for the same target at once take turns
    (a file lock); the first writes it and the others use it, and temporary files left
    by a writer that was killed are removed.
    """
    from filelock import FileLock

    target = cache_dir(data_dir) / name
    if _problem(target, validate) is None:
        return target
    locks = target.parent / LOCKS
    locks.mkdir(exist_ok=True)
    with FileLock(locks / f"{name}.lock"):
        problem = _problem(target, validate)
        if problem is None:  # another process wrote it meanwhile
            return target
        for stale in target.parent.glob(f".{name}{_TMP}*"):  # left by a killed writer
            shutil.rmtree(stale, ignore_errors=True)
        if problem != "missing":
            warnings.warn(f"{target} is damaged ({problem}); generating it again", stacklevel=2)
            _remove(target)
        with atomic_path(target) as tmp:
            write(tmp)
            if validate is not None and (reason := _problem(tmp, validate)):
                raise DamagedFileError(f"the data just generated for {name} fail their "
                                       f"check ({reason}); this is a bug in the generator")
    return target


def safe_torch_load(path: str | os.PathLike):
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain containers
    only, never code. A refusal names the global that was refused and the file, instead
    of torch's advice to turn the safety off; a truncated file says so."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        what = (f"it refers to {found.group(1)}, which is not a tensor or a plain container"
                if found else str(err).strip().splitlines()[-1])
        raise DamagedFileError(
            f"{path} was not loaded: {what}. Only tensors, numbers, strings and lists, "
            "tuples and dicts of them are loaded (no code runs on loading); save the data "
            "as such, e.g. torch.save([(x, y), ...], path).") from None
    except (RuntimeError, EOFError) as err:
        first = (str(err).strip().splitlines() or [f"{type(err).__name__}, an empty file"])[0]
        raise DamagedFileError(
            f"{path} is not a complete torch.save file ({first}); it may be truncated: "
            "remove it and write or download it again.") from None


def check_arrays(spec: dict[str, tuple[tuple | None, str]]) -> Validator:
    """A validator for ``cached``/``fetch`` of an ``.npz`` file: ``spec`` maps each array
    name to ``(shape, dtype)``; a ``None`` in the shape (or as the shape) accepts any size.
    It also refuses missing or extra keys and NaN or inf in floating-point arrays."""
    import numpy as np

    def validate(path: pathlib.Path) -> None:
        with np.load(path, allow_pickle=False) as f:
            if set(f.files) != set(spec):
                raise ValueError(f"{path.name} holds arrays {sorted(f.files)}, "
                                 f"expected {sorted(spec)}")
            for key, (shape, dtype) in spec.items():
                a = f[key]
                if a.dtype != np.dtype(dtype):
                    raise ValueError(f"{key} has dtype {a.dtype}, expected {dtype}")
                if shape is not None and (a.ndim != len(shape) or any(
                        s is not None and s != n for s, n in zip(shape, a.shape, strict=True))):
                    raise ValueError(f"{key} has shape {a.shape}, expected {shape}")
                if a.dtype.kind == "f" and not np.isfinite(a).all():
                    raise ValueError(f"{key} contains NaN or inf")

    return validate


def fetch(dataset: str, url: str, sha256: str | None, filename: str | None = None,
          data_dir: str | os.PathLike | None = None,
          offline_hint: str = "DATASET = 'generated'", downloader=None,
          validate: Validator | None = None) -> pathlib.Path:
    """Download ``url`` into the cache once, checking its SHA-256, and return the path.

    A download goes to a temporary file that is moved into place only when complete and
    verified; a cached file whose SHA-256 no longer matches is downloaded again. Failures
    raise :class:`DataUnavailableError` (naming the data set, the URL and
    ``offline_hint``, the parameter that switches to generated data) or
    :class:`ChecksumError`. ``validate(path)`` (optional) raises if the file is not the
    expected data; such a file is refused with :class:`DamagedFileError`, which names it
    and says how to remove it. ``downloader`` is passed to pooch (for mirrors and tests).
    """
    import pooch

    folder = cache_dir(data_dir)
    filename = filename or url.rstrip("/").split("/")[-1]
    known_hash = f"sha256:{sha256}" if sha256 else None
    try:
        path = pooch.retrieve(url, known_hash, fname=filename, path=folder,
                              downloader=downloader, progressbar=False)
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        raise ChecksumError(
            f"{dataset}: the file from {url} does not match its SHA-256 {sha256}; it was not "
            "kept. Try again later, or report the changed file."
        ) from err
    except Exception as err:  # network, HTTP and OS errors alike
        raise DataUnavailableError(
            f"{dataset} could not be downloaded from {url} ({type(err).__name__}: {err}). "
            f"Without network, set {offline_hint} in the parameters cell to use generated "
            f"data in the same format, or put the file at {folder / filename}."
        ) from err
    path = pathlib.Path(path)
    problem = _problem(path, validate)
    if problem is not None:
        raise DamagedFileError(
            f"{dataset}: the file {path} is not the expected data ({problem}). Remove it "
            f"(rm -r '{path}') and run again to download it afresh.")
    return path
