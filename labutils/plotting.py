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



# ------------------------------------------------------------------ explorer drawings


def attention_image(ax, weights, rows, cols):
    """One attention map (Tq, Tk) as an image, queries down, keys across, with token
    labels. Returns the image (for a colour bar)."""
    image = ax.imshow(np.asarray(weights), vmin=0, vmax=1, cmap="magma")
    ax.set_xticks(range(len(cols)), cols, rotation=90)
    ax.set_yticks(range(len(rows)), rows)
    ax.grid(False)
    return image


def draw_attention_head(fig, maps, labels, kind, layer, head):
    """The attention-head viewer of notebook 05: ``maps[kind]`` is a list over layers of
    (h, Tq, Tk) weights, ``labels[kind]`` the (query, key) token labels; ``layer`` and
    ``head`` count from 1, as in the title."""
    layers = maps[kind]
    if not 1 <= layer <= len(layers) or not 1 <= head <= len(layers[0]):
        raise ValueError(f"layer {layer} / head {head} out of range: layers 1..{len(layers)}, "
                         f"heads 1..{len(layers[0])}")
    ax = fig.add_subplot(1, 1, 1)
    rows, cols = labels[kind]
    image = attention_image(ax, layers[layer - 1][head - 1], rows, cols)
    fig.colorbar(image, ax=ax, label="attention weight")
    ax.set_title(f"{kind}: layer {layer} of {len(layers)}, head {head} of {len(layers[0])}")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    return ax


def draw_ctc_lattice(fig, lattices, target, t):
    """The CTC lattice explorer of notebook 06. ``lattices[target]`` holds ``log_alpha``
    and ``log_beta`` (T, S') and ``states``, the labels of l'; ``t`` counts frames from 1.
    Draws log10 alpha, log10 beta and the posterior gamma = alpha beta / p with frame t
    marked, and gamma_t(s) over the states of frame t."""
    lat = lattices[target]
    la, lb, states = np.asarray(lat["log_alpha"]), np.asarray(lat["log_beta"]), lat["states"]
    T, S = la.shape
    if not 1 <= t <= T:
        raise ValueError(f"frame t={t} is outside 1..{T}")
    log_p = np.logaddexp.reduce(la[0] + lb[0])
    gamma = np.exp(la + lb - log_p)
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1, 0.8]})
    panels = [(la / np.log(10), r"$\log_{10}\alpha_t(s)$", "magma"),
              (lb / np.log(10), r"$\log_{10}\beta_t(s)$", "magma"),
              (gamma, r"posterior $\gamma_t(s)$", "viridis")]
    for ax, (values, title, cmap) in zip(axes[:3], panels, strict=True):
        shown = np.where(np.isfinite(values), values, np.nan)
        image = ax.imshow(shown.T, aspect="auto", cmap=cmap, extent=(0.5, T + 0.5, S - 0.5, -0.5))
        ax.axvline(t, color="w", lw=1.5)
        ax.axvline(t, color="k", lw=0.8, ls="--")
        fig.colorbar(image, ax=ax, fraction=0.06)
        ax.set_title(title)
        ax.set_xlabel("frame t")
        ax.set_yticks(range(S), states)
        ax.grid(False)
    axes[0].set_ylabel(f"state of l' ({target})")
    axes[3].barh(range(S), gamma[t - 1], color=color("ctc"))
    axes[3].set_ylim(S - 0.5, -0.5)
    axes[3].set_yticks(range(S), states)
    axes[3].set_xlim(0, 1)
    axes[3].set_xlabel(r"$\gamma_t(s)$")
    axes[3].set_title(f"frame {t}: states sum to {gamma[t - 1].sum():.2f}")
    fig.suptitle(f"target {target}, frame {t} of {T}: p(l|x) = {np.exp(log_p):.3g}; "
                 f"alpha_t(s) beta_t(s) / p summed over s is 1 in every frame")
    fig.tight_layout()
    return axes


def draw_beam_search(fig, beams, exact, beam_width, names=None):
    """The beam-width explorer of notebook 06. ``beams[w]`` is the output of
    ``prefix_beam_search`` with beam w (best first); ``exact`` maps every labelling (tuple)
    to its exact log p(l|x). Shows the kept labellings' beam scores against their exact
    probabilities; ``names`` turns a labelling into text (default: digits)."""
    names = names or (lambda labels: " ".join(map(str, labels)) or "(empty)")
    kept = beams[beam_width][:8]
    best = max(exact, key=exact.get)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(kept))
    ax.barh(y - 0.2, [np.exp(s) for _, s in kept], height=0.4, color=color("ctc"),
            label="beam score")
    ax.barh(y + 0.2, [np.exp(exact[tuple(lab)]) for lab, _ in kept], height=0.4,
            color="0.6", label="exact p(l|x)")
    ax.set_yticks(y, [names(lab) + ("  (best)" if tuple(lab) == best else "")
                      for lab, _ in kept])
    ax.set_ylim(len(kept) - 0.5, -0.5)
    ax.set_xlabel("probability")
    ax.legend(loc="lower right")
    found, score = kept[0]
    verdict = "the best labelling" if tuple(found) == best else \
        f"missed: best is {names(best)} (p = {np.exp(exact[best]):.3f})"
    ax.set_title(f"beam width {beam_width}: decodes {names(found)} with score "
                 f"{np.exp(score):.3f}; {verdict}", fontsize=9)
    return ax

use_style()
