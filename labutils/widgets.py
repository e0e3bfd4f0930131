"""Playable audio, and interactive explorers: sliders and menus that redraw a figure."""

from __future__ import annotations

import base64
import html
import io
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence

import numpy as np

STATIC_ENV = "LABUTILS_STATIC"


def _as_signal(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    x = np.squeeze(x)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"an audio signal must be one channel of samples, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("an audio signal contains NaN or inf; check the model's output")
    return x


class Players:
    """Audio players with labels, shown in one row. In a notebook they render as HTML
    players; anywhere else (a terminal, a test) the object prints a one-line summary."""

    def __init__(self, signals: Mapping[str, np.ndarray], sr: int, common_scale: bool):
        self.signals = dict(signals)
        self.sr = int(sr)
        self.common_scale = common_scale

    def __repr__(self) -> str:
        parts = [f"{k} ({v.size / self.sr:.2f} s)" for k, v in self.signals.items()]
        return f"<audio at {self.sr} Hz: {', '.join(parts)}>"

    def _repr_html_(self) -> str:
        from IPython.display import Audio

        peak = max(float(np.max(np.abs(v))) for v in self.signals.values()) or 1.0
        cells = []
        for label, x in self.signals.items():
            scale = peak if self.common_scale else (float(np.max(np.abs(x))) or 1.0)
            player = Audio(x / scale, rate=self.sr, normalize=False)._repr_html_()
            cells.append(
                f"<td style='padding:4px 12px;text-align:center'><b>{html.escape(label)}</b>"
                f"<br>{player}</td>"
            )
        return f"<table><tr>{''.join(cells)}</tr></table>"


def play(signals, sr: int, labels: Sequence[str] | None = None, common_scale: bool = True):
    """Players for one signal of shape (N,) or several (a dict label -> signal, or a list).

    With ``common_scale`` every signal is divided by the same peak, so that a noisy and a
    denoised version keep their loudness difference; otherwise each is normalised alone.
    Use as the last expression of a cell, or ``display(play(...))``.
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if isinstance(signals, Mapping):
        items = {str(k): _as_signal(v) for k, v in signals.items()}
    elif isinstance(signals, (list, tuple)):
        labels = labels or [f"signal {i + 1}" for i in range(len(signals))]
        if len(labels) != len(signals):
            raise ValueError(f"{len(signals)} signals but {len(labels)} labels")
        items = {str(k): _as_signal(v) for k, v in zip(labels, signals, strict=True)}
    else:
        items = {(labels or ["signal"])[0]: _as_signal(signals)}
    if not items:
        raise ValueError("play() needs at least one signal")
    return Players(items, sr, common_scale)


def static_mode() -> bool:
    """True where no person can move a slider: ``LABUTILS_STATIC=1`` (set for nbval, the
    batch runner and the rendered site), or outside an IPython kernel."""
    if os.environ.get(STATIC_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return True
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return True
    shell = get_ipython()
    return shell is None or not hasattr(shell, "kernel")


def _control(name: str, spec):
    """An ipywidgets control from a widget, a list of choices, or ``(low, high, step,
    value)`` numbers (integers give an integer slider)."""
    import ipywidgets as w

    style = {"description_width": "initial"}
    if isinstance(spec, w.ValueWidget):
        return spec
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"control {name!r}: the list of choices is empty")
        return w.Dropdown(options=spec, value=spec[0], description=name, style=style)
    if isinstance(spec, tuple) and len(spec) == 4:
        low, high, step, value = spec
        if not low <= value <= high:
            raise ValueError(f"control {name!r}: value {value} is outside [{low}, {high}]")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in spec):
            return w.IntSlider(min=low, max=high, step=step, value=value, description=name,
                               style=style, continuous_update=False)
        return w.FloatSlider(min=low, max=high, step=step, value=value, description=name,
                             style=style, continuous_update=False)
    raise TypeError(f"control {name!r}: give an ipywidgets control, a list of choices or "
                    f"(low, high, step, value); got {spec!r}")


class Explorer:
    """Controls that redraw one figure; see :func:`explorer`."""

    def __init__(self, draw: Callable, controls: Mapping, figsize=(8.0, 3.6)):
        if not controls:
            raise ValueError("an explorer needs at least one control")
        self.draw, self.figsize = draw, figsize
        self.controls = {name: _control(name, spec) for name, spec in controls.items()}

    def values(self) -> dict:
        """The controls' current values, by name."""
        return {name: c.value for name, c in self.controls.items()}

    def render(self, **values):
        """A new figure drawn for the current values, updated by ``values``."""
        import matplotlib.pyplot as plt

        unknown = set(values) - set(self.controls)
        if unknown:
            raise TypeError(f"unknown control(s) {sorted(unknown)}; the explorer has "
                            f"{sorted(self.controls)}")
        fig = plt.figure(figsize=self.figsize)
        try:
            self.draw(fig, **{**self.values(), **values})
        except BaseException:
            plt.close(fig)
            raise
        return fig

    def _ipython_display_(self):
        import matplotlib.pyplot as plt
        from IPython.display import display

        if static_mode():
            fig = self.render()
            display(fig)
            plt.close(fig)
            names = ", ".join(self.controls)
            print(f"(In JupyterLab or Colab this figure has controls: {names}.)")
            return
        import ipywidgets as w
        from IPython.utils.capture import capture_output

        _enable_colab_widgets()
        out = w.Output()

        def refresh(_=None):
            # The new outputs are set in one step, not captured with ``with out:``: a
            # frontend still busy creating the Output widget would show captured ones in
            # the cell instead.
            try:
                with capture_output() as shown:  # what draw itself displays (audio players)
                    fig = self.render()
            except Exception:  # show it where the figure was: a callback's error is hidden
                out.outputs = ({"output_type": "stream", "name": "stderr",
                                "text": traceback.format_exc()},)
                return
            outputs = [figure_output(fig)]
            plt.close(fig)
            outputs += [{"output_type": "display_data", "data": o.data, "metadata": o.metadata}
                        for o in shown.outputs]
            outputs += [{"output_type": "stream", "name": name, "text": text}
                        for name, text in (("stdout", shown.stdout), ("stderr", shown.stderr))
                        if text]
            out.outputs = tuple(outputs)

        for control in self.controls.values():
            control.observe(refresh, names="value")
        refresh()
        display(w.VBox([w.HBox(list(self.controls.values()),
                               layout=w.Layout(flex_flow="row wrap")), out]))


def _enable_colab_widgets():
    """On Colab, let its frontend render ipywidgets 8 (which installing labutils may bring):
    Colab's own widget manager speaks ipywidgets 7, and this switches to the standard one.
    Elsewhere (JupyterLab, Notebook 7, VS Code) it does nothing."""
    if "google.colab" in sys.modules:
        from google.colab import output

        output.enable_custom_widget_manager()


def figure_output(fig) -> dict:
    """A matplotlib figure as a notebook output (``display_data`` with a PNG), as the inline
    backend shows it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
                     "text/plain": repr(fig)}}


def explorer(draw: Callable, controls: Mapping, figsize=(8.0, 3.6)) -> Explorer:
    """An interactive figure: ``draw(fig, **values)`` draws one state into an empty figure,
    and every change of a control redraws it. Make it the last expression of a cell.

    ``controls`` maps each keyword of ``draw`` to an ipywidgets control, a list of choices
    (a menu), or ``(low, high, step, value)`` (a slider; all integers give an integer
    slider). Keep ``draw`` under half a second: precompute what the controls scan. Where no
    person can move a control (:func:`static_mode`: nbval, the batch runner, the rendered
    site) the explorer shows its default state as a plain figure, so a saved notebook holds
    no widget. ``explorer(...).render(**values)`` returns the figure for given values.
    """
    return Explorer(draw, controls, figsize)
