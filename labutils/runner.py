"""Batch runs of the series with papermill, and one summary of every notebook's numbers.

A notebook counts as run only when papermill's record says that every code cell ran
and none failed: a cell that raised, a ``sys.exit()``, a kernel that died or a timeout
all mark it failed, with the error's first line and the cell where it happened. The
summary (``summary.json``, ``summary.md``) is rewritten atomically after every notebook;
Ctrl-C marks the notebooks that did not finish "interrupted".
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import json
import multiprocessing
import os
import pathlib
import time

import nbformat

from labutils import paths
from labutils.course import METRIC_MIME, NOTEBOOKS, QUICK_ENV
from labutils.paths import notebooks_dir


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a batch run; ``rows`` is the summary as written when it stopped."""

    def __init__(self, rows: list[dict]):
        super().__init__("batch run interrupted")
        self.rows = rows


def resolve(names: list[str] | None) -> list[pathlib.Path]:
    """Notebook paths from names: ``01``, ``01_rnn_bptt``, or a path. None: every
    notebook of the series that exists, in order. Two notebooks with the same file name
    are refused: their executed copies would overwrite each other."""
    folder = notebooks_dir()
    if not names:
        return [folder / f"{n}.ipynb" for n in NOTEBOOKS if (folder / f"{n}.ipynb").is_file()]
    found = []
    for name in names:
        path = pathlib.Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            found.append(path.resolve())
            continue
        matches = [n for n in NOTEBOOKS if n == name or n.split("_")[0] == name]
        if not matches or not (folder / f"{matches[0]}.ipynb").is_file():
            available = [p.stem for p in sorted(folder.glob("*.ipynb"))]
            raise ValueError(f"no notebook {name!r}; choose from {available} or give a path")
        found.append(folder / f"{matches[0]}.ipynb")
    seen: dict[str, pathlib.Path] = {}
    for path in found:
        if path.name in seen:
            raise ValueError(
                f"two selected notebooks are named {path.name} ({seen[path.name]} and {path}); "
                "their outputs would overwrite each other: select each notebook once, or "
                "rename one copy")
        seen[path.name] = path
    return found


def parse_value(text: str):
    """A ``-p NAME VALUE`` value as a Python literal (``ast.literal_eval``): ``3``, ``0.5``,
    ``True``, ``None``, ``(0, 5)``, ``[1, 2]``, ``'text'``; anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
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


def _first_line(text) -> str:
    lines = [line.strip() for line in str(text or "").strip().splitlines()]
    return lines[0] if lines else ""


def _describe_error(ename: str, evalue) -> str:
    first = _first_line(evalue)
    return f"{ename}: {first}" if first else ename


def outcome(nb, error: BaseException | None = None, timeout: float | None = None) -> str | None:
    """Why an executed notebook ``nb`` (papermill's output) failed, or None if it ran.

    Reads papermill's record of each cell (``metadata.papermill``: status, start time)
    and the exception papermill raised, if any. Cells are counted as in the notebook
    that was run (papermill's injected-parameters cell is not counted).
    """
    cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    code = [(i, c) for i, c in enumerate(cells) if c.cell_type == "code"]

    def record(cell):
        return cell.metadata.get("papermill", {})

    started = [i for i, c in code if record(c).get("start_time")]
    where = f" in cell {started[-1]}" if started else ""
    if error is not None and type(error).__name__ == "CellTimeoutError":
        seconds = f"{timeout:g} s" if timeout else "the time limit"
        return f"timed out after {seconds}{where}"
    if error is not None and type(error).__name__ == "DeadKernelError":
        return f"the kernel died{where} (out of memory, or the process was killed)"
    for i, cell in code:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if record(cell).get("status") == "failed" or errors:
            if errors:
                return f"{_describe_error(errors[0]['ename'], errors[0]['evalue'])} (cell {i})"
            return f"failed in cell {i}"
    if error is not None:
        return f"{_describe_error(type(error).__name__, error)}{where}"
    missing = [i for i, c in code if record(c).get("status") != "completed"
               or not record(c).get("start_time")]
    if nb.metadata.get("papermill", {}).get("exception") or missing:
        return (f"stopped early: cell {missing[0]} never ran" if missing
                else "papermill recorded an exception")
    return None


def kernel_manager(env: dict[str, str]):
    """A kernel manager class whose kernels get ``env`` on top of this process's
    environment, which stays unchanged."""
    from jupyter_client.manager import AsyncKernelManager

    class SettingsKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            base = kw.pop("env", None) or os.environ
            return await super().start_kernel(env={**base, **env}, **kw)

    return SettingsKernelManager


def _literal_parameters() -> None:
    """Make papermill write every ``-p`` value as the Python literal it is: by itself it
    writes a tuple (``(0, 5)``) or a set as the string of it."""
    from papermill.translators import PythonTranslator, papermill_translators

    class LiteralTranslator(PythonTranslator):
        @classmethod
        def translate(cls, val):
            if isinstance(val, (tuple, set, frozenset, complex, bytes)):
                return repr(val)
            return super().translate(val)

    papermill_translators.register("python", LiteralTranslator)


def run_one(path: pathlib.Path, out_dir: pathlib.Path, parameters: dict, quick: bool,
            timeout: float | None = None, env: dict[str, str] | None = None) -> dict:
    """Execute one notebook with papermill into ``out_dir`` and return its summary row.
    ``env``: environment variables for the kernel only."""
    import papermill as pm

    _literal_parameters()
    output = out_dir / path.name
    row = {"notebook": path.stem, "status": "ok", "seconds": None, "metrics": [],
           "error": None, "output": str(output)}
    output.unlink(missing_ok=True)  # never read an older run's copy as this run's
    error = None
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path), str(output), parameters={"QUICK": quick, **parameters},
            kernel_name="python3", cwd=str(path.parent), progress_bar=False,
            execution_timeout=timeout, kernel_manager_class=kernel_manager(env or {}),
        )
    except Exception as err:  # the notebook failed; keep going with the others
        error = err
    row["seconds"] = round(time.perf_counter() - start, 1)
    nb = nbformat.read(output, as_version=4) if output.is_file() else None
    if nb is None:
        row["status"], row["error"] = "failed", _describe_error(type(error).__name__, error)
        return row
    row["metrics"] = metrics_of(nb)
    reason = outcome(nb, error, timeout)
    if reason is not None:
        row["status"], row["error"] = "failed", reason
    return row


def _format_metrics(metrics: list[dict]) -> str:
    def fmt(m):
        if m["value"] is None:
            return "—"
        value = f"{m['value']:.4g}" if isinstance(m["value"], float) else str(m["value"])
        return f"{value} {m['unit']}" if m.get("unit") else value

    return "; ".join(f"{m['name']} = {fmt(m)}" for m in metrics)


def summary_markdown(rows: list[dict], quick: bool) -> str:
    """The summary table of a batch run, in Markdown; a column empty in every row (no
    notebook recorded a number nor failed, say) is left out."""
    columns = {
        "notebook": [r["notebook"] for r in rows],
        "status": [r["status"] for r in rows],
        "time (s)": ["—" if r["seconds"] is None else str(r["seconds"]) for r in rows],
        "headline numbers": [
            (_format_metrics(r["metrics"]) if r["status"] == "ok" else r["error"] or "")
            for r in rows
        ],
    }
    columns = {k: v for k, v in columns.items()
               if k in ("notebook", "status") or any(x not in ("", "—") for x in v)}
    align = {"time (s)": "---:"}
    lines = [
        f"# Batch run ({'quick' if quick else 'full'} mode)",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join(align.get(k, "---") for k in columns) + "|",
    ]
    for i in range(len(rows)):
        cells = [str(v[i]).replace("|", "\\|") for v in columns.values()]
        lines.append("| " + " | ".join(cells) + " |")
    done = sum(r["status"] == "ok" for r in rows)
    lines += ["", f"{done} of {len(rows)} notebooks ran without error."]
    return "\n".join(lines) + "\n"


def _write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_summary(out_dir: pathlib.Path, rows: list[dict], quick: bool) -> None:
    """Write ``summary.json`` and ``summary.md`` into ``out_dir``, each atomically."""
    data = {"mode": "quick" if quick else "full", "notebooks": rows}
    _write_atomic(out_dir / "summary.json", json.dumps(data, indent=2) + "\n")
    _write_atomic(out_dir / "summary.md", summary_markdown(rows, quick))


def kernel_settings(quick: bool, figures: pathlib.Path) -> dict[str, str]:
    """The environment the runner gives every kernel: the mode, the figure folder,
    static widgets (no live frontend) and, unless asked for, no progress bars."""
    return {QUICK_ENV: "1" if quick else "0", "LABUTILS_FIGURES": str(figures),
            "LABUTILS_STATIC": "1",
            "LABUTILS_PROGRESS": os.environ.get("LABUTILS_PROGRESS", "0")}


def default_figures(quick: bool, out_dir: pathlib.Path) -> pathlib.Path:
    """Where a batch run's figures go: only a full run refreshes the repository's
    ``figures/`` (the README's); a quick run keeps its figures beside its outputs."""
    return out_dir / "figures" if quick else paths.FIGURES


def run(names: list[str] | None = None, out_dir: str | os.PathLike = "runs/quick",
        quick: bool = True, parameters: dict | None = None, jobs: int = 1,
        timeout: float | None = None, figures: str | os.PathLike | None = None) -> list[dict]:
    """Run notebooks (all by default) and write the executed copies, ``summary.md`` and
    ``summary.json`` into ``out_dir``. A ``-p`` parameter goes to every notebook whose
    parameters cell defines it; one that no selected notebook defines is an error, and
    so is ``QUICK`` (the mode is ``quick``). Figures go to ``figures`` (default: the
    repository's ``figures/`` in full mode, ``out_dir/figures`` in quick mode).

    Ctrl-C raises :class:`Interrupted` after writing the summary, in which the notebooks
    that did not finish are "interrupted".
    """
    paths_ = resolve(names)
    parameters = dict(parameters or {})
    if "QUICK" in parameters:
        raise ValueError("QUICK is set by the mode, not by -p: use --quick or --full "
                         "(the summary records the mode that ran)")
    declared = {p: parameter_names(p) for p in paths_}
    unknown = [k for k in parameters if not any(k in names for names in declared.values())]
    if unknown:
        raise ValueError(f"parameter(s) {unknown} are defined by none of the selected notebooks")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = default_figures(quick, out_dir) if figures is None else figures
    env = kernel_settings(quick, pathlib.Path(figures).resolve())
    jobs_args = [
        (p, out_dir, {k: v for k, v in parameters.items() if k in declared[p]}, quick, timeout,
         env)
        for p in paths_
    ]
    rows = [{"notebook": p.stem, "status": "pending", "seconds": None, "metrics": [],
             "error": None, "output": str(out_dir / p.name)} for p in paths_]
    write_summary(out_dir, rows, quick)  # replaces any older summary at once

    def finish(i: int, row: dict) -> None:
        rows[i] = row
        write_summary(out_dir, rows, quick)

    pool = None
    try:
        if jobs <= 1:
            for i, args in enumerate(jobs_args):
                finish(i, {**rows[i], "status": "running"})
                finish(i, run_one(*args))
        else:
            pool = cf.ProcessPoolExecutor(max_workers=jobs,
                                          mp_context=multiprocessing.get_context("spawn"))
            futures = {pool.submit(run_one, *args): i for i, args in enumerate(jobs_args)}
            for future in cf.as_completed(futures):
                finish(futures[future], future.result())
            pool.shutdown()
    except KeyboardInterrupt:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for i, row in enumerate(rows):
            if row["status"] in ("pending", "running"):
                rows[i] = {**row, "status": "interrupted", "error": "interrupted (Ctrl-C)"}
        write_summary(out_dir, rows, quick)
        raise Interrupted(rows) from None
    return rows
