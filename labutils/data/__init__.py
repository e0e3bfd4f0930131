"""Data: the download cache (``cache``) and one module per data source."""

from labutils.data import adding, daps, digits, mnist, mnist1d, numbers, sines, sleep_edf
from labutils.data.cache import (
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

__all__ = [
    "ChecksumError",
    "DamagedFileError",
    "DataUnavailableError",
    "adding",
    "atomic_path",
    "cache_dir",
    "cached",
    "check_arrays",
    "daps",
    "digits",
    "fetch",
    "mnist",
    "mnist1d",
    "numbers",
    "safe_torch_load",
    "sines",
    "sleep_edf",
]
