"""Every notebook's explorer in a real JupyterLab, driven by Selenium in headless Chromium.

For each notebook a small notebook is generated that builds the same explorer (the same
``lu.plotting`` drawing and ``lu.explorer`` controls) on cheap inputs. One token-less
JupyterLab server serves them from a temporary folder, with every lab extension disabled
except ipywidgets' own widget manager, and the notebooks share one kernel (so that torch
is imported once). Each test opens its notebook, runs all cells, moves a slider with the
keyboard and checks that the figure was drawn again, with no error in any output and no
widget error on the page.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from labutils import course
from labutils.paths import NOTEBOOKS, ROOT

WIDGETS = "@jupyter-widgets/jupyterlab-manager"
ANNOUNCEMENTS = "@jupyterlab/apputils-extension:announcements"  # a pop-up asking about news
IMPORTS = "import functools\n\nimport numpy as np\nimport torch\n\nimport labutils as lu\n"

# notebook -> (cheap inputs, the explorer, the slider to move, the key that moves it, what the
# notebook's own explorer cell calls)
EXPLORERS = {
    "00_start_here": ("""
VOWELS = list(lu.audio.VOWEL_FORMANTS)
freqs = np.linspace(0, 8000, 513)
spectra = {(v, f0): 10 * np.cos(2 * np.pi * freqs / f0) - 0.005 * freqs - 5 * i
           for i, v in enumerate(VOWELS) for f0 in range(90, 230, 10)}
""", """
lu.explorer(functools.partial(lu.plotting.draw_vowel_spectrum, freqs=freqs, spectra=spectra),
            {"vowel": VOWELS, "f0": (90, 220, 10, 120)})
""", "f0", "ARROW_RIGHT", "lu.plotting.draw_vowel_spectrum"),
    "01_rnn_bptt": ("""
gen = torch.Generator().manual_seed(0)
Q, _ = torch.linalg.qr(torch.randn(32, 32, generator=gen, dtype=torch.float64))
W_in = torch.randn(32, 2, generator=gen, dtype=torch.float64)
drive = 0.1 * torch.randn(60, 2, generator=gen, dtype=torch.float64)
h_start = 0.1 * torch.randn(32, generator=gen, dtype=torch.float64)
""", """
lu.explorer(functools.partial(lu.plotting.draw_gradient_norms, Q=Q, W_hx=W_in, x=drive,
                              h0=h_start),
            {"rho": (0.5, 1.5, 0.05, 1.1), "activation": ["tanh", "identity"],
             "input_scale": (0.0, 20.0, 0.5, 1.0)})
""", "rho", "ARROW_RIGHT", "lu.plotting.draw_gradient_norms"),
    "02_convolution_mimo_cnn": ("""
from IPython.display import display

from labutils.data import denoising

SR = denoising.SAMPLE_RATE
rng = np.random.default_rng(0)
clips = np.stack([denoising.speech_like(SR // 4, SR, rng) * 0.2 for _ in range(3)])
noises = {k: np.stack([denoising.noise(k, SR // 4, SR, rng) for _ in range(3)])
          for k in ["band", "white"]}


def draw_wiener(fig, noise, snr_db, taps):
    shown = lu.plotting.draw_wiener_explorer(fig, clips, noises[noise], snr_db, taps, SR,
                                             label=f"{noise} noise")
    display(lu.play({"noisy": shown["noisy"], "Wiener-filtered": shown["filtered"]}, SR))
""", """
lu.explorer(draw_wiener, {"noise": ["band", "white"], "snr_db": (-10.0, 20.0, 1.0, 5.0),
                          "taps": (1, 50, 1, 10)}, figsize=(12, 3.8))
""", "snr_db", "ARROW_RIGHT", "lu.plotting.draw_wiener_explorer"),
    "03_spectral_denoising": ("""
t = torch.arange(8000, dtype=torch.float64) / 16000
clean_x = torch.sin(2 * torch.pi * 440 * t)
noisy_x = clean_x + 0.3 * torch.randn(8000, generator=torch.Generator().manual_seed(0),
                                      dtype=torch.float64)


def draw(fig, window, n_fft, hop_fraction):
    lu.plotting.draw_stft_explorer(fig, noisy_x, clean_x, 16000, window, n_fft, hop_fraction)
""", """
lu.explorer(draw, {"window": list(lu.plotting.STFT_WINDOWS), "n_fft": [512, 256, 1024],
                   "hop_fraction": (0.125, 1.0, 0.125, 0.25)}, figsize=(14, 3.8))
""", "hop_fraction", "ARROW_RIGHT", "lu.plotting.draw_stft_explorer"),
    "04_classifier_compression": ("""
torch.manual_seed(0)
model = lu.compression.mlp(40, 10, width=64, depth=3, dropout=0.0)
x, y = torch.randn(200, 40), torch.randint(0, 10, (200,))
draw, controls = lu.plotting.svd_rank_explorer(model, x, y, defaults=[None, 8, 8, None],
                                               reference={"dense": (10000, 0.1)})
""", """
lu.explorer(draw, controls, figsize=(11, 3.8))
""", "rank_W2", "ARROW_LEFT", "lu.plotting.svd_rank_explorer"),
    "05_transformer": ("""
gen = torch.Generator().manual_seed(0)
kinds = ["decoder cross", "decoder self", "encoder self"]
maps = {k: [torch.rand(4, 5, 6, generator=gen).softmax(-1).numpy() for _ in range(2)]
        for k in kinds}
axis_labels = {k: (list("abcde"), list("012345")) for k in kinds}
""", """
lu.explorer(functools.partial(lu.plotting.draw_attention_head, maps=maps, labels=axis_labels),
            {"kind": kinds, "layer": (1, 2, 1, 2), "head": (1, 4, 1, 1)}, figsize=(5.6, 4.6))
""", "head", "ARROW_RIGHT", "lu.plotting.draw_attention_head"),
    "06_ctc": ("""
from labutils import ctc

lp = torch.randn(8, 4, generator=torch.Generator().manual_seed(0),
                 dtype=torch.float64).log_softmax(-1)
lattices = {}
for name, ids in {'"ab"': [1, 2], '"aab"': [1, 1, 2]}.items():
    la, lb, _ = ctc.ctc_alpha_beta(lp, torch.tensor(ids), 8, len(ids))
    states = ctc.extend_targets(torch.tensor([ids]))[0][0].tolist()
    lattices[name] = {"log_alpha": la.numpy(), "log_beta": lb.numpy(),
                      "states": ["-abc"[k] for k in states]}
""", """
lu.explorer(functools.partial(lu.plotting.draw_ctc_lattice, lattices=lattices),
            {"target": list(lattices), "t": (1, 8, 1, 4)}, figsize=(15, 3.6))
""", "t", "ARROW_RIGHT", "lu.plotting.draw_ctc_lattice"),
    "07_wav2vec": ("""
from labutils import wav2vec

gen = torch.Generator().manual_seed(0)
logits = 2 * torch.randn(300, 40, generator=gen)
gumbel = -torch.log(-torch.log(torch.rand(300, 40, generator=gen)))


def draw(fig, p, span, tau):
    lu.plotting.draw_wav2vec_explorer(fig, p, span, tau, lengths=[99, 90, 75, 60, 45, 30],
                                      logits=logits, gumbel=gumbel,
                                      expected=wav2vec.expected_mask_fraction, seed=0)
""", """
lu.explorer(draw, {"p": (0.0, 0.3, 0.005, 0.065), "span": (1, 20, 1, 10),
                   "tau": (0.1, 4.0, 0.1, 2.0)}, figsize=(12, 3.6))
""", "span", "ARROW_RIGHT", "lu.plotting.draw_wav2vec_explorer"),
    "08_sleep_ctc_miniproject": ("""
from scipy.signal import welch

rng = np.random.default_rng(0)
x = rng.standard_normal((40, 3, 3000))
stages = rng.integers(0, 5, 40)
frame_probs, ctc_probs = rng.dirichlet(np.ones(5), 40), rng.dirichlet(np.ones(6), 40)
spec_freqs, spectra = welch(x, fs=100, nperseg=256)


def draw(fig, epoch):
    lu.plotting.draw_sleep_scrubber(fig, epoch - 1, x, stages, frame_probs, ctc_probs,
                                    spec_freqs, spectra, ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG"))
""", """
lu.explorer(draw, {"epoch": (1, 40, 1, 5)}, figsize=(11, 6))
""", "epoch", "ARROW_RIGHT", "lu.plotting.draw_sleep_scrubber"),
    "09_speaker_mc_dropout": ("""
rng = np.random.default_rng(0)
p1 = rng.uniform(size=(50, 40))
samples, labels = np.stack([1 - p1, p1], -1), rng.integers(0, 2, 40)
""", """
lu.explorer(lambda fig, passes, chunk: lu.plotting.draw_mc_passes(
                fig, samples, labels, chunk, passes, 10),
            {"passes": (1, 50, 1, 20), "chunk": [0, 3, 7]}, figsize=(10, 3.6))
""", "passes", "ARROW_RIGHT", "lu.plotting.draw_mc_passes"),
}


def test_every_notebook_has_an_explorer_here_built_as_it_builds_its_own():
    assert sorted(EXPLORERS) == sorted(course.NOTEBOOKS)
    for name, (_, _, slider, _, call) in EXPLORERS.items():
        code = "\n".join(c.source for c in nbformat.read(NOTEBOOKS / f"{name}.ipynb", 4).cells
                         if c.cell_type == "code")
        assert "lu.explorer(" in code and call.split(".")[-1] in code, (name, call)
        assert f'"{slider}"' in code or f"{slider}=" in code, (name, slider)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, data: dict | None = None, method: str = "GET"):
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read() or b"null")


def _lab_extensions() -> set[str]:
    """The names of the prebuilt lab extensions this environment has."""
    from jupyter_core.paths import jupyter_path

    names = set()
    for folder in map(pathlib.Path, jupyter_path("labextensions")):
        for package in folder.glob("**/package.json"):
            if package.parent.parent == folder or package.parent.parent.parent == folder:
                names.add(json.loads(package.read_text())["name"])
    return names


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):
    """A JupyterLab server over the generated notebooks, all on one kernel, opened in the
    browser. Yields the server's address."""
    root = tmp_path_factory.mktemp("lab")
    jupyter = tmp_path_factory.mktemp("jupyter")
    for name, (inputs, explorer, *_) in EXPLORERS.items():
        nb = new_notebook(cells=[new_code_cell(IMPORTS + inputs), new_code_cell(explorer.strip())])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, root / f"{name}.ipynb")
    others = sorted(_lab_extensions() - {WIDGETS})
    assert WIDGETS in _lab_extensions(), "ipywidgets' lab extension (jupyterlab_widgets) is missing"
    settings = jupyter / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)  # every cell in the page, as a student's browser shows them
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    (jupyter / "config" / "labconfig").mkdir(parents=True)
    (jupyter / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {name: True for name in [*others, ANNOUNCEMENTS]}}))
    env = {k: v for k, v in os.environ.items() if k not in ("LABUTILS_STATIC", "MPLBACKEND")}
    env.update(JUPYTER_CONFIG_DIR=str(jupyter / "config"), JUPYTER_DATA_DIR=str(jupyter / "data"),
               JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(jupyter / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(jupyter / "workspaces"),
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = (jupyter / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
         f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=None", "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _request(f"{base}/api/status")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (jupyter / "server.log")
                                .read_text()[-2000:])
                time.sleep(0.5)
        kernel = _request(f"{base}/api/kernels", {"name": "python3"}, "POST")["id"]
        for name in EXPLORERS:
            _request(f"{base}/api/sessions", {"path": f"{name}.ipynb", "type": "notebook",
                                              "name": "", "kernel": {"id": kernel}}, "POST")
        browser.get(f"{base}/lab?reset")
        browser.set_script_timeout(60)
        _wait(browser, "return !!(window.jupyterapp && window.jupyterapp.started && "
                       "document.querySelector('.jp-LabShell'))", 60, "JupyterLab did not load")
        plugins = browser.execute_script("return window.jupyterapp.listPlugins()")
        assert f"{WIDGETS}:plugin" in plugins
        enabled = [p for p in plugins if p.split(":")[0] in others]
        assert not enabled, f"these should have been disabled: {enabled}"
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait(browser, script: str, seconds: float, what: str, *args):
    """Run ``script`` (which returns a value) until it returns something true."""
    deadline = time.monotonic() + seconds
    while True:
        value = browser.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            shot = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / "explorer_failure.png"
            browser.save_screenshot(str(shot))
            state = str(browser.execute_script(OUTPUTS))[:2000]
            pytest.fail(f"{what} within {seconds} s (screenshot {shot}); cells: {state}")
        time.sleep(0.25)


OPEN = """
const [path, done] = arguments;
const app = window.jupyterapp;
app.restored.then(() => {
  if (window.explored) {              // close the last notebook without asking to save it
    window.explored.context.model.dirty = false;
    window.explored.dispose();
  }
  return app.commands.execute('docmanager:open', {path});
})
  .then(w => w.context.ready.then(() => w.sessionContext.ready).then(() => {
     window.explored = w;
     done(w.sessionContext.session && w.sessionContext.session.kernel ? 'ok' : 'no kernel');
  }))
  .catch(e => done(String(e)));
"""
OUTPUTS = """
const w = window.explored, cells = w.content.model.cells, found = [];
for (let i = 0; i < cells.length; i++) {
  const cell = cells.get(i);
  if (cell.type === 'code') found.push({count: cell.executionCount,
                                        outputs: cell.outputs.toJSON()});
}
return found;
"""
SLIDER = ("//div[contains(@class, 'widget-slider')][.//label[normalize-space(.)='{}']]")

# the explorer's figure once it differs from arguments[0], or the first error shown
FIGURE = """
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
const image = panel && panel.querySelector('.widget-output img');
if (image && image.src !== arguments[0]) return image.src;
const shown = panel ? panel.querySelector('.widget-output') : null;
if (shown && shown.innerText.includes('Traceback')) return 'error ' + shown.innerText.slice(-400);
const cells = window.explored.content.model.cells;
for (let i = 0; i < cells.length; i++)
  for (const o of (cells.get(i).type === 'code' ? cells.get(i).outputs.toJSON() : []))
    if (o.output_type === 'error') return 'error ' + o.ename + ': ' + o.evalue;
return '';
"""


@pytest.mark.parametrize("name", list(EXPLORERS))
def test_the_explorer_redraws_when_a_slider_moves(lab, browser, name):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    *_, slider, key, _ = EXPLORERS[name]
    opened = browser.execute_async_script(OPEN, f"{name}.ipynb")
    assert opened == "ok", f"{name}: the notebook did not open with its kernel: {opened}"
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    first = _wait(browser, FIGURE, 90, f"{name}: the explorer's figure did not appear", "")
    assert not first.startswith("error"), f"{name}: a cell failed, {first}"
    control = browser.find_element(By.XPATH, SLIDER.format(slider))
    before = control.find_element(By.CSS_SELECTOR, ".widget-readout").text
    handle = control.find_element(By.CSS_SELECTOR, ".noUi-handle")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", handle)
    handle.send_keys(getattr(Keys, key))
    redrawn = _wait(browser, FIGURE, 30, f"{name}: moving {slider} did not redraw the figure",
                    first)
    assert not redrawn.startswith("error"), f"{name}: the redraw failed, {redrawn}"
    after = control.find_element(By.CSS_SELECTOR, ".widget-readout").text
    assert after != before, f"{name}: {slider} still reads {before}"
    cells = browser.execute_script(OUTPUTS)
    assert all(c["count"] for c in cells), f"{name}: not every cell ran: {cells}"
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"
              or (o.get("name") == "stderr" and "Traceback" in "".join(o.get("text", "")))]
    assert not errors, f"{name}: {errors}"
    shown = cells[-1]["outputs"]   # the explorer's cell shows the widget, and nothing else
    assert [list(o.get("data", {})) for o in shown] == \
        [["application/vnd.jupyter.widget-view+json", "text/plain"]], f"{name}: {shown}"[:2000]
    text = browser.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden)").text
    for bad in ("Error displaying widget", "Model not found", "Traceback"):
        assert bad not in text, f"{name} shows {bad!r}"
