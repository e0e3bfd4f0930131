"""Batch runs of the series with papermill, and one summary of every notebook's numbers."""

from __future__ import annotations

import ast
import concurrent.futures as cf
import json
import multiprocessing
import os
import pathlib
import time

import nbformat

from labutils.course import METRIC_MIME, NOTEBOOKS, QUICK_ENV

ROOT = pathlib.Path(__file__).resolve().parents[1]


def notebooks_dir() -> pathlib.Path:
    """The folder of the series' notebooks (``notebooks/`` of the repository)."""
    return ROOT / "notebooks"


def resolve(names: list[str] | None) -> list[pathlib.Path]:
    """Notebook paths from names: ``01``, ``01_rnn_bptt``, or a path. None: every
    notebook of the series that exists, in order."""
    folder = notebooks_dir()
    if not names:
        return [folder / f"{n}.ipynb" for n in NOTEBOOKS if (folder / f"{n}.ipynb").is_file()]
    paths = []
    for name in names:
        path = pathlib.Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            paths.append(path.resolve())
            continue
        matches = [n for n in NOTEBOOKS if n == name or n.split("_")[0] == name]
        if not matches or not (folder / f"{matches[0]}.ipynb").is_file():
            available = [p.stem for p in sorted(folder.glob("*.ipynb"))]
            raise ValueError(f"no notebook {name!r}; choose from {available} or give a path")
        paths.append(folder / f"{matches[0]}.ipynb")
    return paths


def parse_value(text: str):
    """A ``-p NAME VALUE`` value as Python: True/False/None, int, float, else the string."""
    if text in {"True", "False", "None"}:
        return {"True": True, "False": False, "None": None}[text]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parameter_names(path: pathlib.Path) -> set[str]:
    """The names assigned at the top level of a notebook's ``parameters`` cell."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            return {
                target.id
                for node in tree.body
                if isinstance(node, (ast.Assign, ast.AnnAssign))
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(target, ast.Name)
            }
    raise ValueError(f"{path.name} has no cell tagged 'parameters'")


def metrics_of(nb) -> list[dict]:
    """The metrics that ``lu.record`` left in an executed notebook's outputs."""
    return [
        out["data"][METRIC_MIME]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if METRIC_MIME in out.get("data", {})
    ]


def run_one(path: pathlib.Path, out_dir: pathlib.Path, parameters: dict, quick: bool,
            timeout: float | None = None) -> dict:
    """Execute one notebook with papermill into ``out_dir`` and return its summary row."""
    import papermill as pm

    os.environ[QUICK_ENV] = "1" if quick else "0"
    os.environ.setdefault("LABUTILS_PROGRESS", "0")
    output = out_dir / path.name
    row = {"notebook": path.stem, "status": "ok", "seconds": None, "metrics": [],
           "error": None, "output": str(output)}
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path), str(output), parameters={"QUICK": quick, **parameters},
            kernel_name="python3", cwd=str(path.parent), progress_bar=False,
            execution_timeout=timeout,
        )
    except Exception as err:  # the notebook failed; keep going with the others
        row["status"] = "failed"
        row["error"] = f"{getattr(err, 'ename', type(err).__name__)}: " + (
            str(getattr(err, "evalue", err)).strip().splitlines() or [""]
        )[-1]
    row["seconds"] = round(time.perf_counter() - start, 1)
    if output.is_file():
        row["metrics"] = metrics_of(nbformat.read(output, as_version=4))
    return row


def _format_metrics(metrics: list[dict]) -> str:
    def fmt(m):
        if m["value"] is None:
            return "—"
        value = f"{m['value']:.4g}" if isinstance(m["value"], float) else str(m["value"])
        return f"{value} {m['unit']}" if m.get("unit") else value

    return "; ".join(f"{m['name']} = {fmt(m)}" for m in metrics)


def summary_markdown(rows: list[dict], quick: bool) -> str:
    """The summary table of a batch run, in Markdown."""
    lines = [
        f"# Batch run ({'quick' if quick else 'full'} mode)",
        "",
        "| notebook | status | time (s) | headline numbers |",
        "|---|---|---:|---|",
    ]
    for r in rows:
        what = _format_metrics(r["metrics"]) if r["status"] == "ok" else r["error"]
        what = (what or "").replace("|", "\\|")
        lines.append(f"| {r['notebook']} | {r['status']} | {r['seconds']} | {what} |")
    failed = sum(r["status"] != "ok" for r in rows)
    lines += ["", f"{len(rows) - failed} of {len(rows)} notebooks ran without error."]
    return "\n".join(lines) + "\n"


def run(names: list[str] | None = None, out_dir: str | os.PathLike = "runs/quick",
        quick: bool = True, parameters: dict | None = None, jobs: int = 1,
        timeout: float | None = None) -> list[dict]:
    """Run notebooks (all by default) and write the executed copies, ``summary.md`` and
    ``summary.json`` into ``out_dir``. A ``-p`` parameter goes to every notebook whose
    parameters cell defines it; one that no selected notebook defines is an error."""
    paths = resolve(names)
    parameters = dict(parameters or {})
    declared = {p: parameter_names(p) for p in paths}
    unknown = [k for k in parameters if not any(k in names for names in declared.values())]
    if unknown:
        raise ValueError(f"parameter(s) {unknown} are defined by none of the selected notebooks")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs_args = [
        (p, out_dir, {k: v for k, v in parameters.items() if k in declared[p]}, quick, timeout)
        for p in paths
    ]
    if jobs <= 1:
        rows = [run_one(*args) for args in jobs_args]
    else:
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            rows = list(pool.map(run_one, *zip(*jobs_args, strict=True)))
    (out_dir / "summary.json").write_text(
        json.dumps({"mode": "quick" if quick else "full", "notebooks": rows}, indent=2) + "\n"
    )
    (out_dir / "summary.md").write_text(summary_markdown(rows, quick))
    return rows
