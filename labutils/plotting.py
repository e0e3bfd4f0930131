"""One figure style for the series, loss curves, signal plots and ``save_figure``."""

from __future__ import annotations

import os
import pathlib

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

STYLE = {
    "figure.figsize": (7.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "image.cmap": "magma",
    "axes.prop_cycle": mpl.cycler(
        color=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
    ),
}


# One colour per model (and per reference) across the whole series, so that a GRU is the
# same green in every figure: ``color("gru")``.
COLORS = {
    "rnn": "#7f7f7f",
    "gru": "#2ca02c",
    "lstm": "#9467bd",
    "cnn": "#1f77b4",
    "bilstm": "#9467bd",
    "transformer": "#ff7f0e",
    "linear": "#8c564b",
    "wiener": "#d62728",
    "oracle": "#000000",
    "baseline": "#bcbd22",
    "noisy": "#aaaaaa",
    "clean": "#17becf",
    "mc_dropout": "#1f77b4",
    "single_model": "#e377c2",
    "ensemble": "#d62728",
    "temperature": "#8c564b",
    "framewise": "#1f77b4",
    "ctc": "#ff7f0e",
    "pretrained": "#2ca02c",
    "random_init": "#7f7f7f",
    "log_mel": "#8c564b",
}


def color(name: str) -> str:
    """The series' colour of a model or reference, e.g. ``color("gru")``."""
    key = name.lower().replace("-", "_").replace(" ", "_")
    if key not in COLORS:
        raise KeyError(f"no series colour for {name!r}; add it to labutils.plotting.COLORS "
                       f"(known: {', '.join(COLORS)})")
    return COLORS[key]


def use_style() -> None:
    """Apply the series' matplotlib style (done once when labutils is imported)."""
    mpl.rcParams.update(STYLE)


def figures_dir() -> pathlib.Path:
    """Where figures are saved: ``$LABUTILS_FIGURES``, else ``figures/`` of the repository
    when labutils runs from a clone, else ``./figures``."""
    env = os.environ.get("LABUTILS_FIGURES")
    if env:
        return pathlib.Path(env).expanduser()
    root = pathlib.Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir():
        return root / "figures"
    return pathlib.Path.cwd() / "figures"


def figure_path(name: str) -> pathlib.Path:
    """Where :func:`save_figure` puts ``name`` (PNG unless ``name`` has a suffix)."""
    if not name or pathlib.Path(name).name != name:
        raise ValueError(f"figure name {name!r} must be a plain file name like 'ctc_lattice.png'")
    return figures_dir() / (name if pathlib.Path(name).suffix else f"{name}.png")


def save_figure(fig: mpl.figure.Figure, name: str) -> None:
    """Save ``fig`` as ``figures/<name>`` (see :func:`figure_path`), atomically."""
    path = figure_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    fig.savefig(tmp, metadata={"Software": None} if path.suffix == ".png" else None)
    os.replace(tmp, path)


def plot_history(history, keys: list[str] | None = None, axes=None, title: str = ""):
    """Plot a training :class:`~labutils.training.History`: the losses on the left and,
    if any, the other metrics on the right. Returns the figure."""
    keys = keys or [k for k in history.keys() if k not in {"lr", "seconds"}]
    losses = [k for k in keys if k.endswith("loss")]
    others = [k for k in keys if not k.endswith("loss")]
    if axes is None:
        ncols = 2 if others else 1
        fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols + 1, 3.3), squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(axes)
        fig = axes[0].figure
    names = {k.split("_", 1)[-1] for k in others}
    metric_label = names.pop() if len(names) == 1 else "metric"
    groups = ((axes[0], losses, "loss"), (axes[-1], others, metric_label))
    if len(axes) < 2:  # one axis: everything on it
        groups = ((axes[0], losses + others, "value" if others else "loss"),)
    for ax, group, label in groups:
        if not group:
            continue
        for key in group:
            values = history[key]
            ax.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 30 else None,
                    ms=3, label=key.replace("_", " "))
        if history.best_epoch is not None:
            ax.axvline(history.best_epoch + 1, color="0.6", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


class LivePlot:
    """Loss curves redrawn in place in a notebook after every epoch (text outside one)."""

    def __init__(self):
        from IPython import get_ipython
        from IPython.display import display

        self.handle = None
        self.fig = None
        if get_ipython() is not None:
            self.fig = plt.figure(figsize=(6, 3))
            plt.close(self.fig)
            self.handle = display(self.fig, display_id=True)

    def update(self, history) -> None:
        if self.handle is None:
            return
        self.fig.clear()
        plot_history(history, axes=[self.fig.add_subplot(1, 1, 1)])
        self.handle.update(self.fig)

    def close(self) -> None:
        if self.fig is not None:
            plt.close(self.fig)


def plot_signal(x, sr: float, ax=None, label: str | None = None, **kwargs):
    """Plot a waveform ``x`` of shape (N,) against time in seconds. Returns the axes."""
    x = np.asarray(x, dtype=float).reshape(-1)
    ax = ax or plt.subplots(figsize=(7, 2.4))[1]
    ax.plot(np.arange(x.size) / sr, x, lw=0.8, label=label, **kwargs)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    if label:
        ax.legend(loc="upper right")
    return ax


def plot_spectrogram(spec_db, sr: float, hop: int, ax=None, fmax: float | None = None,
                     colorbar: bool = True):
    """Show a spectrogram in dB of shape (freqs, frames) from ``labutils.audio``."""
    spec_db = np.asarray(spec_db)
    ax = ax or plt.subplots(figsize=(7, 3))[1]
    extent = [0, spec_db.shape[1] * hop / sr, 0, sr / 2]
    im = ax.imshow(spec_db, origin="lower", aspect="auto", extent=extent)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.grid(False)
    if fmax:
        ax.set_ylim(0, fmax)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="dB")
    return ax


use_style()


def plot_reliability(ax, rel: dict, label: str, color: str | None = None):
    """A reliability curve from :func:`labutils.uncertainty.reliability`: accuracy against
    mean confidence per bin (empty bins skipped), with the diagonal of perfect calibration."""
    full = rel["count"] > 0
    ax.plot([0.5, 1], [0.5, 1], color="0.6", ls=":", lw=1)
    ax.plot(rel["confidence"][full], rel["accuracy"][full], marker="o", ms=4, label=label,
            color=color)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    return ax


def draw_mc_passes(fig, samples, labels, chunk: int, passes: int, bins: int = 10):
    """The MC dropout explorer: ``samples`` (S, N, 2) softmax outputs of S passes,
    ``labels`` (N,). Left: the first ``passes`` outputs P(accept) for chunk ``chunk`` with
    their running mean and standard deviation; right: the reliability curve of the mean
    over ``passes`` passes on all N chunks, with its ECE."""
    from labutils import uncertainty as un

    s = np.asarray(samples)[:passes]
    p_accept = s[:, chunk, 1]
    n = np.arange(1, passes + 1)
    running = np.cumsum(p_accept) / n
    spread = np.array([p_accept[:k].std() for k in n])
    ax1, ax2 = fig.subplots(1, 2)
    ax1.scatter(n, p_accept, s=10, color="0.5", label="one pass")
    ax1.plot(n, running, color=color("mc_dropout"), label="mean so far")
    ax1.fill_between(n, running - spread, running + spread, color=color("mc_dropout"),
                     alpha=0.2, lw=0, label="± standard deviation")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_xlabel("number of passes")
    ax1.set_ylabel("P(accept)")
    truth = "accept" if labels[chunk] == 1 else "reject"
    ax1.set_title(f"chunk {chunk} (truth: {truth}): mean {running[-1]:.2f} "
                  f"± {spread[-1]:.2f}")
    ax1.legend(loc="lower left", fontsize=8)
    mean = s.mean(0)
    plot_reliability(ax2, un.reliability(mean, labels, bins), f"{passes} passes",
                     color("mc_dropout"))
    ax2.set_title(f"calibration over all chunks: ECE {un.ece(mean, labels, bins):.3f}")
    fig.tight_layout()
    return fig
