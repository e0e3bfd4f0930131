"""Data: the download cache (``cache``) and one module per data source."""

from labutils.data import mnist1d, numbers, sines
from labutils.data.cache import (
    ChecksumError,
    DataUnavailableError,
    atomic_path,
    cache_dir,
    cached,
    fetch,
)

__all__ = [
    "ChecksumError",
    "DataUnavailableError",
    "atomic_path",
    "cache_dir",
    "cached",
    "fetch",
    "mnist1d",
    "numbers",
    "sines",
]
