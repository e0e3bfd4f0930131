"""The series' conventions in one place: the notebook list, quick mode, the setup cell,
the Colab badge and the headline-metric recorder that the batch runner tabulates."""

from __future__ import annotations

import json
import math
import os

# Where Colab installs the package from, and where the badges point. Publishing the
# series changes this one line; `python -m labutils sync` then rewrites every notebook.
REPOSITORY = "dlsp-course/dlsp-notebooks"
# The package version (pyproject.toml reads it from here). Colab installs the release
# tagged v<VERSION>; after a version change `make sync` rewrites every setup cell.
VERSION = "0.1.0"
PACKAGE = f"labutils @ git+https://github.com/{REPOSITORY}@v{VERSION}"

# The series, in order: file name -> title. The title cell of each notebook reads
# "# NN · <title>" and the README links it under the same title; tests check both.
# `python -m labutils new NN_name "Title"` adds an entry and creates the notebook.
NOTEBOOKS = {
    "00_start_here": "Start here",
    "01_rnn_bptt": "Recurrent networks and backpropagation through time",
    "02_convolution_mimo_cnn": "Convolution from scratch, MIMO filters, a MIMO CNN denoiser",
    "03_spectral_denoising": "Spectral denoising: linear and CNN models on the STFT",
    "04_classifier_compression": "A classifier, what its layers see, and SVD compression",
    "05_transformer": "The transformer, built and trained from scratch",
    "06_ctc": "Connectionist temporal classification: forward-backward and decoding",
    "07_wav2vec": "wav2vec and wav2vec 2.0: contrastive losses and product quantization",
    "08_sleep_ctc_miniproject": "Sleep staging with CTC: a miniproject on Sleep-EDF",
    "09_speaker_mc_dropout": "Speaker accept/reject with MC dropout and deep ensembles",
}

QUICK_ENV = "LABUTILS_QUICK"
METRIC_MIME = "application/vnd.labutils.metric+json"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def quick_mode(default: bool = False) -> bool:
    """Whether to run in quick mode: read from ``LABUTILS_QUICK`` (1/0, true/false).

    nbval cannot pass parameters, so CI sets the variable; papermill's ``-p QUICK ...``
    overrides the value in the notebook's parameters cell.
    """
    raw = os.environ.get(QUICK_ENV)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{QUICK_ENV}={raw!r} is not understood; use 1 or 0.")


def repository_url(path: str) -> str:
    """The web address of a file of the repository, e.g. ``repository_url("README.md")``."""
    return f"https://github.com/{REPOSITORY}/blob/main/{path}"


def colab_url(notebook: str) -> str:
    """The 'Open in Colab' address of ``notebooks/<notebook>.ipynb``."""
    return (
        f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/"
        f"{notebook}.ipynb"
    )


def colab_badge(notebook: str) -> str:
    """Markdown for the 'Open in Colab' badge of one notebook."""
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(notebook)})"
    )


SETUP_CELL = '''\
# Setup (the same in every notebook): use the local package inside a clone of the
# repository, install it on Colab, then import the tools every notebook uses.
import importlib.util
import pathlib
import subprocess
import sys

if importlib.util.find_spec("labutils") is None:
    _root = next((p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents]
                  if (p / "labutils" / "__init__.py").is_file()), None)
    _package = "<PACKAGE>"
    if _root is not None:
        sys.path.insert(0, str(_root))
    elif "google.colab" in sys.modules:
        _pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", _package],
                              capture_output=True, text=True)
        if _pip.returncode != 0:
            _last = "\\n".join((_pip.stderr or _pip.stdout).strip().splitlines()[-4:])
            raise RuntimeError(
                f"Installing labutils failed; pip said:\\n{_last}\\nCheck the runtime's "
                f"internet connection and that {_package.split(' @ ')[1]} exists, "
                "then run this cell again.") from None
    else:
        raise ModuleNotFoundError(
            "labutils is missing. In a clone of the repository: pip install -e . ; "
            f'anywhere else: pip install "{_package}"')

import matplotlib.pyplot as plt
import numpy as np
import torch

import labutils as lu\
'''.replace("<PACKAGE>", PACKAGE)


def _jsonable(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def record(name: str, value, unit: str = "", note: str = "") -> None:
    """Record one headline number of a notebook, e.g. ``record("test_cer", 0.004)``.

    It is shown in the notebook and carried in the cell's output under a dedicated MIME
    type, from which ``python -m labutils run`` builds its summary table.
    """
    if not name or not isinstance(name, str):
        raise ValueError("record() needs a metric name, e.g. record('test_accuracy', 0.93)")
    metric = {"name": name, "value": _jsonable(value), "unit": unit, "note": note}
    json.dumps(metric)  # fail here, not in the runner, if the value is not serialisable
    text = f"{name} = {metric['value']}{(' ' + unit) if unit else ''}"
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a dependency of ipywidgets
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display({"text/plain": text, METRIC_MIME: metric}, raw=True)
