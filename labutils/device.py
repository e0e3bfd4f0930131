"""Choosing the compute device and seeding every random number generator."""

from __future__ import annotations

import random

import numpy as np
import torch

_CHOICES = ("auto", "cuda", "mps", "cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(prefer: str = "auto") -> torch.device:
    """Return the device to compute on.

    ``prefer="auto"`` picks CUDA when available (a Colab T4, say), else Apple MPS, else
    the CPU. An explicit ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"`` is honoured, and
    raises ``RuntimeError`` when that device is not available here.
    """
    name = str(prefer).strip().lower()
    kind = name.split(":")[0]
    if kind not in _CHOICES:
        raise ValueError(f"DEVICE={prefer!r} is not one of {_CHOICES} (or 'cuda:N').")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"DEVICE={prefer!r} asked for CUDA, but torch sees no CUDA GPU here. "
                "On Colab choose Runtime > Change runtime type > T4 GPU, or set DEVICE='auto'."
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f"DEVICE={prefer!r}: only {torch.cuda.device_count()} CUDA device(s) are visible."
            )
        return torch.device(name)
    if kind == "mps" and not _mps_available():
        raise RuntimeError(
            f"DEVICE={prefer!r} asked for Apple MPS, which is not available here; "
            "set DEVICE='auto' or 'cpu'."
        )
    return torch.device(kind)


def describe_device(device: torch.device | str) -> str:
    """One line saying which device is in use and why, e.g. 'cuda (Tesla T4, 15.0 GiB)'."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.1f} GiB): a CUDA GPU"
    if device.type == "mps":
        return "mps (Apple GPU through Metal): no CUDA GPU, MPS available"
    return f"cpu ({torch.get_num_threads()} threads): no CUDA or MPS device available or asked for"


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA), so
    that a notebook run top to bottom draws the same numbers every time on one machine.

    What it does not control: string hashing (``PYTHONHASHSEED`` only acts when the
    interpreter starts, so it is not set here; nothing in the series depends on set or
    dict order of strings), generators created with their own seed (e.g.
    ``torch.Generator().manual_seed``, which the data generators use), and the
    floating-point paths of other hardware: another CPU or GPU may round differently and
    end training at slightly different numbers.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"SEED must be an integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
