"""One figure style for the series, loss curves, signal plots and ``save_figure``."""

from __future__ import annotations

import os
import pathlib

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from labutils import paths

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
    """Where figures are saved: ``$LABUTILS_FIGURES`` if set (the full batch run sets it to
    the repository's ``figures/``), else inside a clone the git-ignored ``runs/figures/``,
    so that running a notebook never changes the committed figures; else ``./figures``."""
    env = os.environ.get("LABUTILS_FIGURES")
    if env:
        return pathlib.Path(env).expanduser()
    if paths.in_clone():
        return paths.SCRATCH_FIGURES
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
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))  # no epoch 2.5
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


# ------------------------------------------------------------- recurrent cell diagrams

_GATE, _OP = (0.55, 0.32), 0.3  # box half-width/height, operation radius (data units)

# Each diagram: nodes {name: (x, y, kind, text)} with kind "gate" (a layer: weights, bias
# and the named nonlinearity of everything wired into it), "lin" (weights and bias only)
# or "op" (elementwise); wires (polylines whose ends may be node names, drawn in order: a
# later wire crossing an earlier one is drawn with a gap, meaning "not connected"); dots
# where wires join; free labels (x, y, text). The cell spans (0, 0)-(10, 6).
_DIAGRAMS = {
    "rnn": (
        "Vanilla RNN cell",
        {"act": (5.0, 3.0, "gate", "tanh")},
        [[(-1.0, 1.2), (5.0, 1.2), "act"], [(5.0, -1.0), (5.0, 1.2)],
         ["act", (5.0, 4.6), (11.0, 4.6)], [(5.0, 4.6), (5.0, 7.0)]],
        [(5.0, 1.2), (5.0, 4.6)],
        [(-1.0, 1.5, "$h_{t-1}$"), (5.3, -0.9, "$x_t$"), (10.6, 4.9, "$h_t$"),
         (5.3, 6.8, "$h_t$"), (5.8, 3.0, "$W_{hh}h_{t-1} + W_{hx}x_t + b$")],
    ),
    "gru": (
        "GRU cell (PyTorch's variant: $r_t$ gates $U_n h_{t-1}$ only)",
        {"z": (2.0, 2.2, "gate", "σ"), "r": (3.6, 2.2, "gate", "σ"),
         "whn": (2.8, 4.0, "lin", "$U_n$"), "rh": (3.6, 3.2, "op", "×"),
         "n": (5.2, 2.2, "gate", "tanh"), "zh": (2.0, 5.2, "op", "×"),
         "one": (6.6, 4.5, "op", "1−"), "zn": (6.6, 2.2, "op", "×"),
         "sum": (8.6, 5.2, "op", "+")},
        [[(-1.0, 5.2), "zh"], ["zh", "sum"], ["sum", (11.0, 5.2)], [(9.6, 5.2), (9.6, 7.0)],
         [(0.5, 5.2), (0.5, 0.8), (3.6, 0.8), "r"], [(1.2, -1.0), (1.2, 0.8)],
         [(2.0, 0.8), "z"], ["z", "zh"], [(2.0, 4.5), "one"], ["one", "zn"],
         [(0.5, 4.0), "whn"], ["whn", (3.6, 4.0), "rh"], ["r", "rh"], ["rh", (5.2, 3.2), "n"],
         [(1.2, 0.3), (5.2, 0.3), "n"], ["n", "zn"], ["zn", (8.6, 2.2), "sum"]],
        [(9.6, 5.2), (0.5, 5.2), (1.2, 0.8), (2.0, 0.8), (2.0, 4.5), (0.5, 4.0),
         (1.2, 0.3)],
        [(-1.0, 5.5, "$h_{t-1}$"), (1.5, -0.9, "$x_t$"), (10.6, 5.5, "$h_t$"),
         (9.9, 6.8, "$h_t$"), (2.3, 1.45, "$z_t$"), (3.9, 1.45, "$r_t$"),
         (5.5, 1.45, "$n_t$")],
    ),
    "lstm": (
        "LSTM cell with a forget gate (Gers et al. 2000)",
        {"f": (2.0, 2.2, "gate", "σ"), "i": (3.8, 2.2, "gate", "σ"),
         "g": (5.4, 2.2, "gate", "tanh"), "o": (7.2, 2.2, "gate", "σ"),
         "fc": (2.0, 5.0, "op", "×"), "ig": (4.6, 3.6, "op", "×"),
         "sum": (4.6, 5.0, "op", "+"), "tc": (8.6, 3.6, "gate", "tanh"),
         "oc": (8.6, 2.2, "op", "×")},
        [[(-1.0, 5.0), "fc"], ["fc", "sum"], ["sum", (11.0, 5.0)],
         [(-1.0, 0.8), (7.2, 0.8), "o"], [(0.9, -1.0), (0.9, 0.8)],
         [(2.0, 0.8), "f"], [(3.8, 0.8), "i"], [(5.4, 0.8), "g"],
         ["f", "fc"], ["i", (3.8, 3.6), "ig"], ["g", (5.4, 3.6), "ig"], ["ig", "sum"],
         [(8.6, 5.0), "tc"], ["tc", "oc"], ["o", "oc"],
         ["oc", (8.6, 1.2), (9.6, 1.2), (9.6, 0.4), (11.0, 0.4)], [(9.6, 1.2), (9.6, 7.0)]],
        [(0.9, 0.8), (2.0, 0.8), (3.8, 0.8), (5.4, 0.8), (8.6, 5.0), (9.6, 1.2)],
        [(-1.0, 5.3, "$c_{t-1}$"), (-1.0, 1.1, "$h_{t-1}$"), (1.2, -0.9, "$x_t$"),
         (10.6, 5.3, "$c_t$"), (10.6, 0.7, "$h_t$"), (9.9, 6.8, "$h_t$"),
         (2.3, 1.45, "$f_t$"), (4.1, 1.45, "$i_t$"), (5.7, 1.45, "$g_t$"),
         (7.5, 1.45, "$o_t$")],
    ),
}


def _node_extent(node, direction) -> float:
    """Distance from a node's centre to its edge along the unit vector ``direction``."""
    if node[2] == "op":
        return _OP
    dx, dy = abs(direction[0]), abs(direction[1])
    return min(_GATE[0] / dx if dx else np.inf, _GATE[1] / dy if dy else np.inf)


def _wire_points(wire, nodes) -> np.ndarray:
    """The polyline of a wire, its ends pulled back to the edges of the nodes they touch."""
    pts = np.array([nodes[p][:2] if isinstance(p, str) else p for p in wire], dtype=float)
    for end, near in ((0, 1), (-1, -2)):
        if isinstance(wire[end], str):
            d = pts[near] - pts[end]
            d /= np.linalg.norm(d)
            pts[end] += d * _node_extent(nodes[wire[end]], d)
    return pts


def draw_cell(kind: str):
    """Draw the ``"rnn"``, ``"gru"`` or ``"lstm"`` cell of ``labutils.rnn`` as a schematic;
    returns the figure.

    Yellow boxes are layers (weights, a bias and the named nonlinearity applied to the sum
    of the inputs wired into them), white boxes weights and a bias only, pink circles
    elementwise operations. Dots join wires; a wire that crosses another with a gap is not
    connected to it.
    """
    from matplotlib import patheffects
    from matplotlib.patches import Circle, FancyBboxPatch

    if kind not in _DIAGRAMS:
        raise ValueError(f"kind must be one of {sorted(_DIAGRAMS)}, got {kind!r}")
    title, nodes, wires, dots, labels = _DIAGRAMS[kind]
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.add_patch(FancyBboxPatch((0, 0), 10, 6, boxstyle="round,pad=0,rounding_size=0.5",
                                fc="#eef3fa", ec="#4a6fa5", lw=1.5))
    halo = [patheffects.Stroke(linewidth=5, foreground="#eef3fa"), patheffects.Normal()]
    for z, wire in enumerate(wires):
        pts = _wire_points(wire, nodes)
        ax.plot(pts[:, 0], pts[:, 1], color="0.25", lw=1.4, solid_capstyle="butt",
                path_effects=halo, zorder=1 + z / 100)
        inside = 0 < pts[-1][0] < 10 and 0 < pts[-1][1] < 6
        if isinstance(wire[-1], str) or not inside:  # an arrowhead where the wire ends
            step = (pts[-1] - pts[-2]) / np.linalg.norm(pts[-1] - pts[-2])
            ax.annotate("", xy=pts[-1], xytext=pts[-1] - 0.3 * step, zorder=2,
                        arrowprops={"arrowstyle": "-|>", "color": "0.25", "lw": 1.4,
                                    "shrinkA": 0, "shrinkB": 0, "mutation_scale": 12})
    for x, y in dots:
        ax.add_patch(Circle((x, y), 0.09, fc="0.25", ec="none", zorder=2.5))
    colours = {"gate": ("#ffd866", "#a07800"), "lin": ("white", "#a07800")}
    for x, y, shape, text in nodes.values():
        if shape == "op":
            patch = Circle((x, y), _OP, fc="#f6b3c6", ec="#a0304f", lw=1.2, zorder=3)
        else:
            patch = FancyBboxPatch((x - _GATE[0], y - _GATE[1]), 2 * _GATE[0], 2 * _GATE[1],
                                   boxstyle="round,pad=0,rounding_size=0.1",
                                   fc=colours[shape][0], ec=colours[shape][1], lw=1.2, zorder=3)
        ax.add_patch(patch)
        ax.text(x, y, text, ha="center", va="center", fontsize=10, zorder=4)
    for x, y, text in labels:
        ax.text(x, y, text, ha="left", va="center", fontsize=10)
    ax.set_xlim(-1.3, 11.6)
    ax.set_ylim(-1.3, 7.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    return fig


use_style()
