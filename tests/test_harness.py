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


TRAIN = """
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(48, 3)
data = TensorDataset(x, x.sum(1, keepdim=True))
model = torch.nn.Linear(3, 1)
history = lu.fit(model, DataLoader(data, batch_size=8), val_loader=DataLoader(data, batch_size=16),
                 epochs=3, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                 loss_fn=torch.nn.functional.mse_loss)
print(lu.evaluate(model, DataLoader(data, batch_size=16), loss_fn=torch.nn.functional.mse_loss))
"""


def test_progress_bars_leave_no_dead_widget_in_a_saved_notebook(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("LABUTILS_PROGRESS", "1")  # progress on, as in JupyterLab
    monkeypatch.delenv("CI", raising=False)
    nb = new_notebook(cells=[new_code_cell(SETUP_CELL), new_code_cell(TRAIN)],
                      metadata=KERNELSPEC)
    # JupyterLab saves no widget state unless asked to (Settings > Save Widget State
    # Automatically), so a saved notebook has only what its outputs hold as text
    NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    saved = nbformat.reads(nbformat.writes(nb), as_version=4)  # saved and reopened
    stored = saved.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    views = [out["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
             for cell in saved.cells for out in cell.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    dead = [v for v in views if v not in stored]
    assert not dead, f"{len(dead)} outputs show a widget whose state is not saved"
    text = "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "")
                   for out in saved.cells[1].outputs)
    assert "fit: 3 epochs" in text and "best val_loss in epoch" in text
    assert "evaluate: loss" in text
