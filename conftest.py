"""Loaded by every pytest run inside the repository, whatever it collects: the unit tests,
`make test`, or one notebook (`pytest notebooks/06_ctc.ipynb --nbval-lax`). Each runs
the way `make test` does: quick mode, widgets as static figures, no progress bars, and
figures and generated data in a temporary folder (unless set), so that a test run never
changes the repository. nbval's kernels inherit these settings."""

import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

_scratch = pathlib.Path(tempfile.mkdtemp(prefix="labutils-tests-"))
os.environ.setdefault("LABUTILS_QUICK", "1")
os.environ.setdefault("LABUTILS_STATIC", "1")
os.environ.setdefault("LABUTILS_FIGURES", str(_scratch / "figures"))
os.environ.setdefault("LABUTILS_DATA", str(_scratch / "data"))
os.environ.setdefault("LABUTILS_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    """Run notebooks in this environment's kernel, as `make test` does."""
    if hasattr(config.option, "nbval_current_env") and not config.option.nbval_kernel_name:
        config.option.nbval_current_env = True
