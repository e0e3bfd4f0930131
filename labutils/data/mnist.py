"""MNIST (LeCun et al., 1998): 70,000 handwritten digits of 28 x 28 bytes in the IDX format,
fetched with checksums into the cache and parsed with numpy (nothing is executed).
``write_idx`` writes arrays in the same gzipped IDX format, for tests."""

from __future__ import annotations

import gzip
import os
import pathlib
import struct

import numpy as np

from labutils.data.cache import fetch

# The mirror TensorFlow uses; PyTorch's is https://ossci-datasets.s3.amazonaws.com/mnist/
BASE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
FILES = {  # name -> SHA-256 of the gzipped file
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one MNIST uses


def write_idx(path: str | os.PathLike, array) -> None:
    """Write a uint8 array of 1 to 3 dimensions as a gzipped IDX file: two zero bytes, the
    type code 0x08, the number of dimensions, each size as a big-endian uint32, the bytes."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or not 1 <= array.ndim <= 3:
        raise ValueError(f"write_idx takes uint8 arrays of 1 to 3 dimensions, got "
                         f"{array.dtype} with shape {array.shape}")
    header = struct.pack(">BBBB", 0, 0, UBYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array).tobytes())


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a (gzipped, if the name ends in .gz) IDX file of unsigned bytes into a uint8
    array of the shape its header gives. A file whose header or length does not match
    the format raises ``ValueError`` naming the file."""
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # a truncated or damaged gzip stream
        raise ValueError(f"{path} is not a readable IDX file ({err}); delete it to fetch "
                         "it again") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != UBYTE or not 1 <= raw[3] <= 3:
        raise ValueError(f"{path} does not start with an IDX header of unsigned bytes "
                         "(00 00 08 <ndim>); delete it to fetch it again")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path} is truncated inside its IDX header; delete it to fetch it again")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)):
        raise ValueError(f"{path} holds {len(body)} data bytes but its header announces shape "
                         f"{shape} ({int(np.prod(shape))} bytes); the file is truncated or "
                         "corrupt: delete it to fetch it again")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def load(data_dir: str | os.PathLike | None = None, base_url: str = BASE_URL,
         downloader=None) -> dict:
    """MNIST, fetched once into the cache (checked against SHA-256) and read with
    :func:`read_idx`. Returns ``x`` (60000, 28, 28) float32 in [0, 1], ``y`` (60000,) int64,
    ``x_test`` (10000, 28, 28), ``y_test`` (10000,). Offline it raises
    ``lu.data.DataUnavailableError``, whose message names the parameter to change."""
    arrays = {}
    for name, sha256 in FILES.items():
        path = fetch("MNIST", base_url + name, sha256, filename=name, data_dir=data_dir,
                     offline_hint="DATASET = 'mnist1d'", downloader=downloader)
        arrays[name.split("-idx")[0]] = read_idx(path)
    for split in ("train", "t10k"):
        images, labels = arrays[f"{split}-images"], arrays[f"{split}-labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"MNIST {split}: {images.shape} images do not match "
                             f"{labels.shape} labels; delete the files to fetch them again")
        if labels.size and labels.max() > 9:
            raise ValueError(f"MNIST {split}: a label is {labels.max()}, not a digit 0-9; "
                             "delete the files to fetch them again")
    return {
        "x": arrays["train-images"].astype(np.float32) / 255.0,
        "y": arrays["train-labels"].astype(np.int64),
        "x_test": arrays["t10k-images"].astype(np.float32) / 255.0,
        "y_test": arrays["t10k-labels"].astype(np.int64),
    }
