"""labutils: the helpers that every notebook of the series imports as ``lu``."""

from labutils import (
    audio,
    bench,
    compression,
    course,
    data,
    device,
    plotting,
    runner,
    training,
    widgets,
)
from labutils.course import quick_mode, record
from labutils.device import describe_device, get_device, seed_everything
from labutils.plotting import plot_history, save_figure
from labutils.training import History, fit
from labutils.widgets import play

__all__ = [
    "History",
    "audio",
    "bench",
    "compression",
    "course",
    "data",
    "describe_device",
    "device",
    "fit",
    "get_device",
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
