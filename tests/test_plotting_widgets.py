import numpy as np
import pytest
import torch

import labutils as lu
from labutils.training import History


def test_save_figure_writes_a_png_into_the_figure_folder(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setenv("LABUTILS_FIGURES", str(tmp_path / "figs"))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    lu.save_figure(fig, "line")
    plt.close(fig)
    path = tmp_path / "figs" / "line.png"
    assert lu.plotting.figure_path("line") == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["line.png"]
    with pytest.raises(ValueError, match="plain file name"):
        lu.save_figure(fig, "../elsewhere.png")


def test_plot_history_draws_losses_and_metrics():
    import matplotlib.pyplot as plt

    h = History()
    for loss, acc in [(1.0, 0.5), (0.5, 0.8), (0.4, 0.7)]:
        h.append("train_loss", loss)
        h.append("val_loss", loss + 0.1)
        h.append("val_acc", acc)
        h.append("seconds", 1.0)
    h.best_epoch = 2
    fig = lu.plot_history(h)
    left, right = fig.axes
    assert [line.get_label() for line in left.get_lines()[:2]] == ["train loss", "val loss"]
    np.testing.assert_allclose(right.get_lines()[0].get_ydata(), [0.5, 0.8, 0.7])
    assert right.get_ylabel() == "acc"
    plt.close(fig)
    fig, ax = plt.subplots()
    lu.plot_history(h, axes=ax)
    labels = [line.get_label() for line in ax.get_lines()[:3]]
    assert labels == ["train loss", "val loss", "val acc"]
    plt.close(fig)


def test_play_renders_players_or_text():
    x = np.sin(np.linspace(0, 100, 800))
    players = lu.play({"clean": x, "noisy": torch.tensor(x * 2)}, sr=8000)
    assert repr(players) == "<audio at 8000 Hz: clean (0.10 s), noisy (0.10 s)>"
    html = players._repr_html_()
    assert html.count("<audio") == 2 and "clean" in html and "noisy" in html
    single = lu.play(x, 8000)
    assert "signal (0.10 s)" in repr(single)


def test_play_rejects_bad_signals():
    with pytest.raises(ValueError, match="NaN"):
        lu.play(np.array([0.0, np.nan]), 8000)
    with pytest.raises(ValueError, match="one channel"):
        lu.play(np.zeros((2, 10)), 8000)
    with pytest.raises(ValueError, match="labels"):
        lu.play([np.zeros(3), np.zeros(3)], 8000, labels=["a"])
    with pytest.raises(ValueError, match="sample rate"):
        lu.play(np.zeros(3), 0)


def _on_segment(point, a, b) -> bool:
    (px, py), (ax, ay), (bx, by) = point, a, b
    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    inside = min(ax, bx) - 1e-9 <= px <= max(ax, bx) + 1e-9 and \
        min(ay, by) - 1e-9 <= py <= max(ay, by) + 1e-9
    return abs(cross) < 1e-9 and inside


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_draw_cell(kind):
    import matplotlib.pyplot as plt

    from labutils.plotting import _DIAGRAMS, _wire_points

    title, nodes, wires, dots, _ = _DIAGRAMS[kind]
    fig = lu.plotting.draw_cell(kind)
    assert len(fig.axes[0].patches) == 1 + len(nodes) + len(dots)
    plt.close(fig)
    polylines = [_wire_points(w, nodes) for w in wires]
    for dot in dots:  # a dot joins at least two wires (a wire's end on another counts)
        touching = sum(any(_on_segment(dot, p[i], p[i + 1]) for i in range(len(p) - 1))
                       for p in polylines)
        assert touching >= 2, (kind, dot)
    wired = {end for w in wires for end in (w[0], w[-1]) if isinstance(end, str)}
    assert wired == set(nodes), (kind, set(nodes) - wired)


def test_gru_diagram_gates_only_the_recurrent_path():
    from labutils.plotting import _DIAGRAMS

    _, nodes, wires, _, _ = _DIAGRAMS["gru"]
    into = {}
    for w in wires:
        if isinstance(w[-1], str):
            into.setdefault(w[-1], []).append(w[0])
    # r multiplies U_n h only; x reaches the candidate on its own wire, not through r
    assert sorted(map(str, into["rh"])) == ["r", "whn"]
    assert len(into["n"]) == 2 and "rh" in into["n"]
    x_wire = next(w for w in into["n"] if w != "rh")
    assert x_wire[1] < 1.0  # starts on x's input line, below the gates' bus


def test_draw_cell_rejects_unknown_kind():
    with pytest.raises(ValueError, match="lstm"):
        lu.plotting.draw_cell("transformer")


def test_plot_history_puts_epoch_ticks_on_whole_numbers():
    import matplotlib.pyplot as plt

    h = History()
    for loss in (1.0, 0.7, 0.5):  # three epochs: matplotlib's default ticks are 1.0, 1.25, ...
        h.append("train_loss", loss)
    fig = lu.plot_history(h)
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    plt.close(fig)


def test_figures_go_to_a_scratch_folder_unless_the_full_run_asks(monkeypatch):
    monkeypatch.delenv("LABUTILS_FIGURES", raising=False)
    assert lu.plotting.figures_dir() == lu.paths.RUNS / "figures"
    assert lu.plotting.figures_dir() != lu.paths.FIGURES
    assert "runs/" in (lu.paths.ROOT / ".gitignore").read_text().split()


def _sine_draw(fig, freq, shape):
    ax = fig.add_subplot()
    t = np.linspace(0, 1, 200)
    y = np.sin(2 * np.pi * freq * t) if shape == "sine" else np.sign(np.sin(2 * np.pi * freq * t))
    ax.plot(t, y)
    ax.set_title(f"{shape} at {freq} Hz")


def test_explorer_redraws_for_each_control_value():
    import matplotlib.pyplot as plt

    ex = lu.explorer(_sine_draw, {"freq": (1, 10, 1, 3), "shape": ["sine", "square"]})
    assert ex.values() == {"freq": 3, "shape": "sine"}
    for freq, shape in [(1, "sine"), (7, "square")]:
        fig = ex.render(freq=freq, shape=shape)
        ax = fig.axes[0]
        assert ax.get_title() == f"{shape} at {freq} Hz"
        y = ax.get_lines()[0].get_ydata()
        expected = np.sin(2 * np.pi * freq * np.linspace(0, 1, 200))
        np.testing.assert_allclose(y, expected if shape == "sine" else np.sign(expected))
        plt.close(fig)
    ex.controls["freq"].value = 5   # moving the slider changes the default state
    fig = ex.render()
    assert fig.axes[0].get_title() == "sine at 5 Hz"
    plt.close(fig)
    with pytest.raises(TypeError, match="unknown control"):
        ex.render(phase=1)


def test_explorer_controls_are_checked():
    import ipywidgets as w

    ex = lu.explorer(_sine_draw, {"freq": (0.5, 2.0, 0.5, 1.0), "shape": w.Dropdown(
        options=["sine"], value="sine")})
    assert isinstance(ex.controls["freq"], w.FloatSlider)
    with pytest.raises(ValueError, match="outside"):
        lu.explorer(_sine_draw, {"freq": (1, 10, 1, 30)})
    with pytest.raises(TypeError, match="low, high, step, value"):
        lu.explorer(_sine_draw, {"freq": (1, 10)})
    with pytest.raises(ValueError, match="at least one control"):
        lu.explorer(_sine_draw, {})


def test_explorer_is_a_static_figure_without_a_live_frontend(monkeypatch, capsys):
    monkeypatch.setenv("LABUTILS_STATIC", "1")
    assert lu.widgets.static_mode()
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    lu.explorer(_sine_draw, {"freq": (1, 10, 1, 3), "shape": ["sine"]})._ipython_display_()
    import matplotlib.figure

    assert len(shown) == 1 and isinstance(shown[0], matplotlib.figure.Figure)
    assert "controls: freq, shape" in capsys.readouterr().out


def test_series_colours_are_one_per_model():
    assert lu.plotting.color("GRU") == lu.plotting.COLORS["gru"]
    with pytest.raises(KeyError, match="no series colour"):
        lu.plotting.color("perceptron")


def _live_explorer(monkeypatch, draw):
    """Display an explorer as a live kernel would; returns its controls and its output."""
    import base64

    import ipywidgets as w

    monkeypatch.setattr(lu.widgets, "static_mode", lambda: False)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    ex = lu.explorer(draw, {"freq": (1, 10, 1, 3), "shape": ["sine", "square"]})
    ex._ipython_display_()
    (box,) = shown
    controls, out = box.children
    assert isinstance(out, w.Output) and list(controls.children) == list(ex.controls.values())

    def pngs():
        return [base64.b64decode(o["data"]["image/png"]) for o in out.outputs
                if "image/png" in o.get("data", {})]

    return ex, out, pngs


def test_a_live_explorer_sets_its_figure_into_its_output_and_redraws(monkeypatch):
    import matplotlib.pyplot as plt

    ex, out, pngs = _live_explorer(monkeypatch, _sine_draw)
    first = pngs()
    assert len(first) == 1 and first[0][:8] == b"\x89PNG\r\n\x1a\n"
    ex.controls["freq"].value = 7
    second = pngs()
    assert len(second) == 1 and second != first
    reference = ex.render(freq=7)   # the same drawing, as the notebook's own figure would be
    assert lu.widgets.figure_output(reference)["data"]["image/png"] == \
        out.outputs[0]["data"]["image/png"]
    plt.close(reference)
    assert not plt.get_fignums()    # every drawing was closed


def test_a_live_explorer_shows_a_failing_redraw_in_its_output(monkeypatch):
    def draw(fig, freq, shape):
        if freq > 5:
            raise ValueError(f"freq {freq} is too high")
        _sine_draw(fig, freq, shape)

    ex, out, pngs = _live_explorer(monkeypatch, draw)
    ex.controls["freq"].value = 8
    assert pngs() == [] and "ValueError: freq 8 is too high" in out.outputs[0]["text"]
    ex.controls["freq"].value = 2
    assert len(pngs()) == 1


def test_a_live_explorer_on_colab_switches_to_the_standard_widget_manager(monkeypatch):
    """Colab renders ipywidgets 8 only after ``output.enable_custom_widget_manager()``;
    elsewhere nothing Colab-specific is called."""
    import sys
    import types

    calls = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append(1))
    _live_explorer(monkeypatch, _sine_draw)
    assert calls == []
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    _live_explorer(monkeypatch, _sine_draw)
    assert calls == [1]
