"""Data: the download cache (``cache``) and one module per data source."""

from labutils.data import adding, mnist1d, sines
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
    "adding",
    "atomic_path",
    "cache_dir",
    "cached",
    "fetch",
    "mnist1d",
    "sines",
]
