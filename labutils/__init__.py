"""labutils: the helpers that every notebook of the series imports as ``lu``.

Importing it needs only the runtime dependencies. The tooling (``runner``, the batch
runner, and ``notebooks``, which keeps the notebooks' shared cells in step) needs
nbformat and papermill and is imported on first use: ``lu.runner`` or
``from labutils import runner``.
"""

import importlib

from labutils import (
    audio,
    bench,
    course,
    data,
    device,
    metrics,
    paths,
    plotting,
    training,
    widgets,
)
from labutils.course import VERSION as __version__
from labutils.course import quick_mode, record
from labutils.device import describe_device, get_device, seed_everything
from labutils.plotting import plot_history, save_figure
from labutils.training import History, evaluate, fit
from labutils.widgets import explorer, play

__all__ = [
    "History",
    "__version__",
    "audio",
    "bench",
    "course",
    "data",
    "describe_device",
    "device",
    "evaluate",
    "explorer",
    "fit",
    "get_device",
    "metrics",
    "play",
    "plot_history",
    "paths",
    "plotting",
    "quick_mode",
    "record",
    "save_figure",
    "seed_everything",
    "training",
    "widgets",
]

_TOOLS = {"runner", "notebooks"}


def __getattr__(name: str):
    if name in _TOOLS:
        return importlib.import_module(f"labutils.{name}")
    raise AttributeError(f"module 'labutils' has no attribute {name!r}")
