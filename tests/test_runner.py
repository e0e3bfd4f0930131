import json
import subprocess
import sys

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from labutils import runner
from labutils.course import SETUP_CELL

NOTEBOOKS = runner.resolve(None)


def _notebook(path, body: str, params: str = "QUICK = False\nSEED = 0"):
    cells = [new_code_cell(SETUP_CELL), new_code_cell(params, metadata={"tags": ["parameters"]}),
             new_code_cell(body)]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3",
                      "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Three notebooks, the middle one failing, run by the command line with two jobs."""
    folder = tmp_path_factory.mktemp("nbs")
    good = _notebook(folder / "good.ipynb",
                     'lu.record("answer", 42 if QUICK else -1, "units")\nlu.record("seed", SEED)\n'
                     'lu.record("never", None, "steps")')
    bad = _notebook(folder / "bad.ipynb", 'raise RuntimeError("deliberate failure")')
    later = _notebook(folder / "later.ipynb", 'lu.record("ran", True)')
    out = folder / "out"
    cmd = [sys.executable, "-m", "labutils", "run", str(good), str(bad), str(later),
           "--out", str(out), "--jobs", "2", "-p", "SEED", "7", "--figures", str(folder / "f")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=runner.ROOT, timeout=300)
    return proc, out


def test_failure_is_recorded_and_the_others_still_run(batch):
    proc, out = batch
    assert proc.returncode == 1, proc.stderr
    rows = {r["notebook"]: r for r in json.loads((out / "summary.json").read_text())["notebooks"]}
    assert rows["bad"]["status"] == "failed"
    assert "RuntimeError" in rows["bad"]["error"] and "deliberate failure" in rows["bad"]["error"]
    assert rows["good"]["status"] == rows["later"]["status"] == "ok"
    assert rows["later"]["metrics"][0]["value"] is True
    assert all((out / f"{n}.ipynb").is_file() for n in rows)


def test_parameters_and_quick_mode_reach_the_notebooks(batch):
    proc, out = batch
    metrics = {m["name"]: m for m in json.loads((out / "summary.json").read_text())
               ["notebooks"][0]["metrics"]}
    assert metrics["answer"] == {"name": "answer", "value": 42, "unit": "units", "note": ""}
    assert metrics["seed"]["value"] == 7
    table = (out / "summary.md").read_text()
    assert "| good | ok |" in table and "answer = 42 units; seed = 7; never = —" in table
    assert "| bad | failed |" in table and "2 of 3 notebooks ran without error." in table
    assert table in proc.stdout


def test_unknown_parameter_is_refused(tmp_path):
    nb = _notebook(tmp_path / "one.ipynb", "pass")
    with pytest.raises(ValueError, match="EPOCS"):
        runner.run([str(nb)], tmp_path / "out", parameters={"EPOCS": 3})


def test_resolve_names_and_values():
    assert runner.resolve(["00"]) == runner.resolve(["00_start_here"])
    with pytest.raises(ValueError, match="no notebook '42'"):
        runner.resolve(["42"])
    assert [runner.parse_value(v) for v in ["True", "None", "3", "0.5", "ctc"]] == [
        True, None, 3, 0.5, "ctc"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_papermill_injects_parameters_after_the_parameters_cell(path):
    nb = papermill.iorw.load_notebook_node(str(path))  # as papermill reads it
    values = {"QUICK": True, "SEED": 3, "DEVICE": "cpu", "DATA_DIR": "/tmp/x"}
    injected = papermill.parameterize.parameterize_notebook(nb, values)
    tags = [c.metadata.get("tags", []) for c in injected.cells]
    index = next(i for i, t in enumerate(tags) if "parameters" in t)
    assert "injected-parameters" in tags[index + 1]
    namespace = {}
    exec(injected.cells[index + 1].source, namespace)
    assert {k: namespace[k] for k in values} == values
    assert set(values) <= runner.parameter_names(path)
