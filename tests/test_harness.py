"""How the series runs outside the batch runner: `import labutils` without the tooling,
one notebook under pytest set up as `make test` sets it up, and progress bars that
leave no dead widget behind in a saved notebook."""

import os
import subprocess
import sys
import uuid

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from labutils import paths
from labutils.course import SETUP_CELL

KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                             "language": "python"}}


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABUTILS_")}
    return {**env, **extra}


def test_import_labutils_needs_no_tooling():
    blocked = ["nbformat", "papermill", "nbclient", "jupyter_client"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        "import labutils as lu\n"
        "assert lu.fit and lu.data.cached and lu.paths.ROOT\n"
        "try:\n"
        "    lu.runner\n"
        "except ImportError:\n"
        "    print('tooling is lazy')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=paths.ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "tooling is lazy"


def test_one_notebook_under_pytest_runs_as_make_test_runs_it(tmp_path):
    folder = paths.RUNS / f"nbval-check-{uuid.uuid4().hex[:8]}"  # inside the clone, ignored
    folder.mkdir(parents=True)
    check = (
        "import os\n"
        "assert QUICK is True\n"
        "assert os.environ['LABUTILS_STATIC'] == '1'\n"
        "assert lu.plotting.figures_dir() != lu.paths.FIGURES\n"
        "assert lu.paths.ROOT not in lu.data.cache_dir().parents\n"
    )
    nb = new_notebook(cells=[new_code_cell(SETUP_CELL),
                             new_code_cell("QUICK = lu.quick_mode()"), new_code_cell(check)],
                      metadata=KERNELSPEC)
    path = folder / "check.ipynb"
    nbformat.write(nb, path)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(path), "--nbval-lax", "-q",
             "-p", "no:cacheprovider"],
            capture_output=True, text=True, cwd=paths.ROOT, env=_clean_env(), timeout=600)
    finally:
        for p in sorted(folder.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        folder.rmdir()
    assert proc.returncode == 0, proc.stdout[-3000:]
