"""labutils: the helpers that every notebook of the series imports as ``lu``."""

from labutils import (
    audio,
    bench,
    course,
    data,
    device,
    metrics,
    plotting,
    runner,
    training,
    widgets,
)
from labutils.course import quick_mode, record
from labutils.device import describe_device, get_device, seed_everything
from labutils.plotting import plot_history, save_figure
from labutils.training import History, evaluate, fit
from labutils.widgets import explorer, play

__all__ = [
    "History",
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
    "plotting",
    "runner",
    "quick_mode",
    "record",
    "save_figure",
    "seed_everything",
    "training",
    "widgets",
]
