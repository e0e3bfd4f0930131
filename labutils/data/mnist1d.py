"""MNIST-1D (Greydanus, 2020): ten classes of 1-D signals of length 40, generated locally
by the ``mnist1d`` package, so it needs no download."""

from __future__ import annotations

import os
import random

import numpy as np

from labutils.data.cache import cached, check_arrays

LAYOUT = check_arrays({"x": ((None, 40), "float32"), "y": ((None,), "int64"),
                       "x_test": ((None, 40), "float32"), "y_test": ((None,), "int64")})


def _write(path, seed: int) -> None:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    states = random.getstate(), np.random.get_state()
    try:  # make_dataset reseeds the global generators: give them back untouched
        data = make_dataset(args)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    with open(path, "wb") as f:
        np.savez(f, x=data["x"].astype(np.float32), y=data["y"].astype(np.int64),
                 x_test=data["x_test"].astype(np.float32), y_test=data["y_test"].astype(np.int64))


def load(data_dir: str | os.PathLike | None = None, seed: int = 42) -> dict:
    """MNIST-1D (Greydanus 2020) generated locally by the ``mnist1d`` package with its default
    arguments (no download), cached as ``mnist1d_seed<seed>.npz``. Seed 42 is the package's
    default. Returns arrays ``x`` (4000, 40) float32, ``y`` (4000,) int64 in 0..9, ``x_test``
    (1000, 40), ``y_test`` (1000,)."""
    path = cached(f"mnist1d_seed{seed}.npz", lambda p: _write(p, seed), data_dir,
                  validate=LAYOUT)
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in ("x", "y", "x_test", "y_test")}
