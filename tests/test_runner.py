import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from labutils import paths, runner
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
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=paths.ROOT, timeout=300)
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
    values = ["True", "None", "3", "0.5", "ctc", "(0, 5)", "[1, 2]", "'7'", "/tmp/x y", "1e-3"]
    assert [runner.parse_value(v) for v in values] == [
        True, None, 3, 0.5, "ctc", (0, 5), [1, 2], "7", "/tmp/x y", 0.001]


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


def _cli(*args, timeout=600):
    cmd = [sys.executable, "-m", "labutils", "run", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=paths.ROOT, timeout=timeout)


def _rows(out):
    return {r["notebook"]: r for r in json.loads((out / "summary.json").read_text())["notebooks"]}


@pytest.fixture(scope="module")
def stops(tmp_path_factory):
    """Notebooks that stop early in different ways, and two that look at the run itself."""
    folder = tmp_path_factory.mktemp("stops")
    out = folder / "out"
    out.mkdir()
    (out / "summary.md").write_text("| stale | ok | 1 | from an older run |\n")
    look = ('import json, os, pathlib\n'
            'rows = json.loads((pathlib.Path(OUT) / "summary.json").read_text())["notebooks"]\n'
            'lu.record("statuses", " ".join(r["status"] for r in rows))\n'
            'lu.record("stale", "stale" in (pathlib.Path(OUT) / "summary.md").read_text())\n'
            'for name in ["LABUTILS_STATIC", "LABUTILS_QUICK", "LABUTILS_FIGURES"]:\n'
            '    lu.record(name, os.environ.get(name))\n'
            'lu.record("range", repr(SNR_RANGE))\n'
            'lu.record("out", OUT)')
    params = 'QUICK = False\nSEED = 0\nOUT = ""\nSNR_RANGE = (1, 2)'
    notebooks = [
        _notebook(folder / "first.ipynb", look, params),
        _notebook(folder / "exits.ipynb", 'import sys\nsys.exit(0)\nlu.record("x", 1)'),
        _notebook(folder / "dies.ipynb", 'import os\nos._exit(1)'),
        _notebook(folder / "sleeps.ipynb", 'import time\ntime.sleep(600)'),
        _notebook(folder / "last.ipynb", look, params),
    ]
    proc = _cli(*notebooks, "--out", out, "--timeout", 45, "-p", "OUT", out,
                "-p", "SNR_RANGE", "(0, 5)")
    return proc, out


def test_early_stops_dead_kernels_and_timeouts_are_failures(stops):
    proc, out = stops
    assert proc.returncode == 1, proc.stderr
    rows = _rows(out)
    assert {n: r["status"] for n, r in rows.items()} == {
        "first": "ok", "exits": "failed", "dies": "failed", "sleeps": "failed", "last": "ok"}
    assert rows["exits"]["error"] == "SystemExit: 0 (cell 2)"
    assert rows["dies"]["error"].startswith("the kernel died in cell 2")
    assert rows["sleeps"]["error"] == "timed out after 45 s in cell 2"
    assert "2 of 5 notebooks ran without error." in (out / "summary.md").read_text()


def test_summary_is_written_after_every_notebook_and_never_stale(stops):
    _, out = stops
    first = {m["name"]: m["value"] for m in _rows(out)["first"]["metrics"]}
    last = {m["name"]: m["value"] for m in _rows(out)["last"]["metrics"]}
    assert first["statuses"] == "running pending pending pending pending"
    assert first["stale"] is False
    assert last["statuses"] == "ok failed failed failed running"
    assert not list(out.glob(".summary*"))  # no temporary file left


def test_settings_reach_the_kernel_and_parameters_are_literals(stops):
    _, out = stops
    first = {m["name"]: m["value"] for m in _rows(out)["first"]["metrics"]}
    assert first["LABUTILS_STATIC"] == "1" and first["LABUTILS_QUICK"] == "1"
    assert first["LABUTILS_FIGURES"] == str((out / "figures").resolve())
    assert first["range"] == "(0, 5)"  # a tuple, not the string '(0, 5)'
    assert first["out"] == str(out)


def test_the_runner_leaves_its_own_environment_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("LABUTILS_QUICK", raising=False)
    before = dict(os.environ)
    nb = _notebook(tmp_path / "env.ipynb",
                   'import os\nlu.record("quick", os.environ.get("LABUTILS_QUICK"))')
    rows = runner.run([str(nb)], tmp_path / "out", quick=False, figures=tmp_path / "f")
    assert rows[0]["status"] == "ok" and rows[0]["metrics"][0]["value"] == "0"
    assert dict(os.environ) == before


def test_ctrl_c_marks_the_rest_interrupted_and_exits_130(tmp_path):
    marker = tmp_path / "started"
    slow = _notebook(tmp_path / "slow.ipynb",
                     f'import pathlib, time\npathlib.Path({str(marker)!r}).touch()\n'
                     'time.sleep(120)')
    later = _notebook(tmp_path / "later.ipynb", "pass")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "labutils", "run", str(slow), str(later), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=paths.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert {n: r["status"] for n, r in _rows(out).items()} == {
        "slow": "interrupted", "later": "interrupted"}
    assert "| slow | interrupted |" in stdout


def test_quick_as_a_parameter_is_refused(tmp_path):
    nb = _notebook(tmp_path / "one.ipynb", "pass")
    with pytest.raises(ValueError, match="--quick or --full"):
        runner.run([str(nb)], tmp_path / "out", parameters={"QUICK": False})
    proc = _cli(nb, "-p", "QUICK", "False", "--out", tmp_path / "out")
    assert proc.returncode == 2 and "--quick or --full" in proc.stderr
    assert not (tmp_path / "out" / "summary.json").exists()


def test_two_notebooks_with_one_file_name_are_refused(tmp_path):
    a = _notebook((tmp_path / "a").mkdir() or tmp_path / "a" / "x.ipynb", "pass")
    b = _notebook((tmp_path / "b").mkdir() or tmp_path / "b" / "x.ipynb", "pass")
    with pytest.raises(ValueError, match="two selected notebooks are named x.ipynb"):
        runner.resolve([str(a), str(b)])
    with pytest.raises(ValueError, match="named 00_start_here.ipynb"):
        runner.resolve(["00", "00_start_here"])


def test_summary_table_leaves_out_empty_columns():
    rows = [{"notebook": "a", "status": "ok", "seconds": 1.5, "metrics": [], "error": None},
            {"notebook": "b", "status": "ok", "seconds": 2.0, "metrics": [], "error": None}]
    table = runner.summary_markdown(rows, quick=True)
    assert "| notebook | status | time (s) |\n|---|---|---:|\n| a | ok | 1.5 |" in table
    rows[1] = {**rows[1], "status": "interrupted", "seconds": None, "error": "interrupted"}
    assert "| b | interrupted | — | interrupted |" in runner.summary_markdown(rows, True)


def test_only_a_full_run_refreshes_the_committed_figures(tmp_path):
    assert runner.default_figures(False, tmp_path) == paths.FIGURES
    assert runner.default_figures(True, tmp_path) == tmp_path / "figures"
    assert runner.kernel_settings(True, tmp_path)["LABUTILS_FIGURES"] == str(tmp_path)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """One notebook over three seeds, seed 2 failing, and a results file."""
    folder = tmp_path_factory.mktemp("seeds")
    nb = _notebook(folder / "noisy.ipynb",
                   'if SEED == 2:\n    raise RuntimeError("seed two fails")\n'
                   'lu.record("score", [1.0, 4.0][SEED], "dB")\nlu.record("seed", SEED)\n'
                   'lu.record("task", "same")\nlu.record("never", None, "steps")')
    out, results = folder / "out", folder / "results" / "r.json"
    proc = _cli(nb, "--seeds", 0, 1, 2, "--jobs", 2, "--out", out, "--results", results,
                "--figures", folder / "f")
    return proc, out, results


def test_seeds_run_each_notebook_once_per_seed(seeded):
    proc, out, _ = seeded
    assert proc.returncode == 1, proc.stderr
    rows = json.loads((out / "summary.json").read_text())["notebooks"]
    assert [(r["seed"], r["status"]) for r in rows] == [(0, "ok"), (1, "ok"), (2, "failed")]
    assert "seed two fails" in rows[2]["error"]
    for seed in (0, 1, 2):
        assert (out / f"noisy.seed{seed}.ipynb").is_file()
    recorded = [{m["name"]: m["value"] for m in r["metrics"]} for r in rows[:2]]
    assert [r["seed"] for r in recorded] == [0, 1]


def test_seeds_summary_gives_mean_and_sample_std(seeded):
    proc, out, _ = seeded
    # 1 and 4: mean 2.5, sample std |4 - 1| / sqrt(2) = 2.1213...
    (entry,) = json.loads((out / "summary.json").read_text())["seeds"]
    score = next(m for m in entry["metrics"] if m["name"] == "score")
    assert score["values"] == {"0": 1.0, "1": 4.0}
    assert score["mean"] == pytest.approx(2.5)
    assert score["std"] == pytest.approx(3 / 2 ** 0.5)
    assert (score["min"], score["max"]) == (1.0, 4.0)
    table = (out / "summary.md").read_text()
    assert ("| noisy | 2 of 3 |" in table
            and "score = 2.5 ± 2.121 dB (1–4, 2 seeds); seed = 0.5 ± 0.7071 (0–1, 2 seeds); "
                "task = same; never = —; seed 2: RuntimeError: seed two fails (cell 2)" in table)
    assert "| noisy | 2 | failed |" in table and "2 of 3 notebook runs ran" in table
    assert table in proc.stdout


def test_results_file_holds_seeds_machine_and_commit(seeded):
    _, _, results = seeded
    data = json.loads(results.read_text())
    assert data["mode"] == "quick"
    assert data["notebooks"]["noisy"]["1"]["metrics"][0]["value"] == 4.0
    assert data["notebooks"]["noisy"]["2"]["status"] == "failed"
    import torch
    assert data["machine"]["torch"] == torch.__version__
    assert data["machine"]["threads"] == torch.get_num_threads()
    assert data["machine"]["cpu"] and data["machine"]["cores"] == os.cpu_count()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True,
                          text=True).stdout.strip()
    assert data["commit"].startswith(head)


def test_seeds_need_a_seed_parameter_and_no_p_seed(tmp_path):
    nb = _notebook(tmp_path / "fixed.ipynb", "pass", params="QUICK = False")
    with pytest.raises(ValueError, match="fixed.ipynb has no SEED"):
        runner.run([str(nb)], tmp_path / "out", seeds=[0, 1])
    seeded_nb = _notebook(tmp_path / "s.ipynb", "pass")
    with pytest.raises(ValueError, match="SEED given twice"):
        runner.run([str(seeded_nb)], tmp_path / "out", seeds=[0, 1], parameters={"SEED": 1})
    with pytest.raises(ValueError, match="distinct"):
        runner.run([str(seeded_nb)], tmp_path / "out", seeds=[1, 1])
    assert not (tmp_path / "out").exists()


RESULTS = {
    "mode": "full", "commit": "0123456789abcdef", "date": "2026-01-02", "parameters": {},
    "machine": {"cpu": "Test CPU", "cores": 4, "threads": 2, "OMP_NUM_THREADS": "2",
                "gpu": "Tesla T4", "torch": "2.0.0", "python": "3.11.0"},
    "notebooks": {
        "01_rnn": {s: {"status": "ok", "error": None, "seconds": 1.0, "metrics": [
            {"name": "acc", "value": v, "unit": "%", "note": ""},
            {"name": "task", "value": "adding", "unit": "", "note": ""}]}
            for s, v in (("0", 94.0), ("1", 95.0), ("2", 96.5))},
        "06_ctc": {"0": {"status": "ok", "error": None, "seconds": 2.0, "metrics": [
                        {"name": "cer", "value": 0.5, "unit": "", "note": ""}]},
                   "1": {"status": "failed", "error": "RuntimeError: boom (cell 3)",
                         "seconds": 1.0, "metrics": []}},
    },
}


def test_results_table_is_generated_as_expected(tmp_path):
    # acc 94, 95, 96.5: mean 95.1667, deviations -1.1667, -0.1667, 1.3333, squares sum to
    # 1.3611 + 0.0278 + 1.7778 = 3.1667, / 2 = 1.5833, sqrt = 1.2583
    expected = (
        "Full mode, seeds 0, 1, 2, on Test CPU (2 threads, GPU Tesla T4), torch 2.0.0, "
        "commit `0123456789ab`, 2026-01-02; ± is the sample standard deviation over the "
        "seeds.\n\n"
        "| # | headline number | mean ± std | min–max | per seed |\n"
        "|---|---|---|---|---|\n"
        "| 01 | acc (%) | 95.17 ± 1.258 | 94–96.5 | 94, 95, 96.5 |\n"
        "| 06 | cer | 0.5 ± 0 | 0.5–0.5 | 0.5 |\n"
        "| 06 | seed 1 failed | RuntimeError: boom (cell 3) |  |  |\n")
    assert runner.results_markdown(RESULTS) == expected
    results = tmp_path / "full.json"
    results.write_text(json.dumps(RESULTS))
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\nbefore\n{runner.README_BEGIN}\nold table\n"
                      f"{runner.README_END}\nafter\n")
    assert runner.update_readme(readme, results) is True
    assert readme.read_text() == (f"# T\n\nbefore\n{runner.README_BEGIN}\n{expected}"
                                  f"{runner.README_END}\nafter\n")
    assert runner.update_readme(readme, results) is False
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="results:begin"):
        runner.update_readme(readme, results)


def test_readme_table_agrees_with_the_results_file():
    """The committed README's table is what ``make results`` makes of results/full.json
    (or, before any sweep is committed, says that none is)."""
    readme = (paths.ROOT / "README.md").read_text(encoding="utf-8")
    data = runner.load_results(paths.ROOT / "results" / "full.json")
    assert runner.readme_block(readme) == runner.results_markdown(data), (
        "README.md's results table differs from results/full.json: run `make results`")
