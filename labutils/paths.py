"""Where things live: the one module that knows the repository's folders.

Inside a clone, ``ROOT`` is the repository; after ``pip install`` from the repository
(Colab) the package has no repository around it and :func:`in_clone` is False.
"""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIGURES = ROOT / "figures"  # the README's figures: only a full batch run refreshes them
RUNS = ROOT / "runs"  # git-ignored: batch outputs and the figures of every other run
SCRATCH_FIGURES = RUNS / "figures"


def in_clone() -> bool:
    """Whether labutils runs from a clone of the repository (not an installed copy)."""
    return (ROOT / "pyproject.toml").is_file() and NOTEBOOKS.is_dir()


def notebooks_dir() -> pathlib.Path:
    """The folder of the series' notebooks."""
    return NOTEBOOKS
