"""Batch runs of the series with papermill, and one summary of every notebook's numbers.

A notebook counts as run only when papermill's record says that every code cell ran
and none failed: a cell that raised, a ``sys.exit()``, a kernel that died or a timeout
all mark it failed, with the error's first line and the cell where it happened. The
summary (``summary.json``, ``summary.md``) is rewritten atomically after every notebook;
Ctrl-C marks the notebooks that did not finish "interrupted".

With several seeds each notebook runs once per seed (papermill's ``SEED``), into
``NAME.seedS.ipynb``; the summary gives each headline number as mean ± sample standard
deviation over the seeds that ran, with min–max. A results file (``--results``) keeps the
per-seed numbers with the machine and the commit, and ``python -m labutils results``
writes the README's table from it.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import json
import multiprocessing
import os
import pathlib
import platform
import statistics
import subprocess
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
    that was run (papermill's injected-parameters cell and its error banners are not
    counted).
    """
    added = {"injected-parameters", "papermill-error-cell-tag"}
    cells = [c for c in nb.cells if not added & set(c.metadata.get("tags", []))]
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


def output_path(path: pathlib.Path, out_dir: pathlib.Path, seed: int | None) -> pathlib.Path:
    """Where the executed copy of ``path`` goes: ``NAME.ipynb``, or ``NAME.seedS.ipynb`` in
    a run over several seeds (``seed`` not None)."""
    return out_dir / (path.name if seed is None else f"{path.stem}.seed{seed}.ipynb")


def run_one(path: pathlib.Path, out_dir: pathlib.Path, parameters: dict, quick: bool,
            timeout: float | None = None, env: dict[str, str] | None = None,
            seed: int | None = None) -> dict:
    """Execute one notebook with papermill into ``out_dir`` and return its summary row.
    ``env``: environment variables for the kernel only. ``seed``: one seed of a run over
    several (given as ``SEED``, and in the output's name)."""
    import papermill as pm

    _literal_parameters()
    output = output_path(path, out_dir, seed)
    if seed is not None:
        parameters = {**parameters, "SEED": seed}
    row = {"notebook": path.stem, "seed": seed, "status": "ok", "seconds": None,
           "metrics": [], "error": None, "output": str(output)}
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


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _with_unit(text: str, unit: str | None) -> str:
    return f"{text} {unit}" if unit else text


def _format_metrics(metrics: list[dict]) -> str:
    def fmt(m):
        return "—" if m["value"] is None else _with_unit(_number(m["value"]), m.get("unit"))

    return "; ".join(f"{m['name']} = {fmt(m)}" for m in metrics)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def spread(values: list) -> dict:
    """Mean, sample standard deviation (n − 1; 0 for one value), min and max of the numbers
    ``values``, e.g. ``[1.0, 2.0]`` → mean 1.5, std 0.7071, min 1.0, max 2.0."""
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def aggregate(rows: list[dict]) -> list[dict]:
    """One entry per notebook from the rows of a run over seeds: which seeds ran and which
    failed, and per metric its value per seed (``values``: seed → value, seeds that ran
    only) with :func:`spread` when every value is a number."""
    out: dict[str, dict] = {}
    for row in rows:
        entry = out.setdefault(row["notebook"], {"notebook": row["notebook"], "seeds": [],
                                                 "failed": {}, "seconds": [], "metrics": {}})
        entry["seeds"].append(row["seed"])
        if row["status"] != "ok":
            entry["failed"][row["seed"]] = row["error"] or row["status"]
            continue
        entry["seconds"].append(row["seconds"])
        for m in row["metrics"]:
            metric = entry["metrics"].setdefault(
                m["name"], {"name": m["name"], "unit": m.get("unit", ""), "values": {}})
            metric["values"][row["seed"]] = m["value"]
    for entry in out.values():
        for metric in entry["metrics"].values():
            values = list(metric["values"].values())
            if values and all(_is_number(v) for v in values):
                metric.update(spread(values))
        entry["metrics"] = list(entry["metrics"].values())
    return list(out.values())


def format_spread(metric: dict) -> str:
    """``mean ± std unit (min–max, n seeds)`` for a metric of :func:`aggregate`; a value
    that is not a number is shown once if every seed gave it, else per seed."""
    values = list(metric["values"].values())
    n = len(values)
    if "mean" not in metric:
        shown = {_number(v) if v is not None else "—" for v in values}
        if shown == {"—"}:
            return "—"
        if len(shown) == 1:
            return _with_unit(shown.pop(), metric["unit"])
        return " / ".join(f"seed {s}: {_number(v)}" for s, v in metric["values"].items())
    if n == 1:
        return _with_unit(_number(values[0]), metric["unit"]) + " (1 seed)"
    text = f"{_number(metric['mean'])} ± {_number(metric['std'])}"
    return (_with_unit(text, metric["unit"])
            + f" ({_number(metric['min'])}–{_number(metric['max'])}, {n} seeds)")


def _table(header: list[str], body: list[list[str]], align: dict[str, str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(align.get(k, "---") for k in header) + "|"]
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
                    for cells in body]


def seeds_markdown(rows: list[dict]) -> list[str]:
    """The lines of the table of a run over several seeds: one row per notebook with how
    many seeds ran, the mean run time and each headline number's spread; failed seeds
    are named with their error."""
    body = []
    for entry in aggregate(rows):
        ok = len(entry["seeds"]) - len(entry["failed"])
        seconds = entry["seconds"]
        numbers = "; ".join(f"{m['name']} = {format_spread(m)}" for m in entry["metrics"])
        failures = "; ".join(f"seed {s}: {e}" for s, e in entry["failed"].items())
        body.append([entry["notebook"], f"{ok} of {len(entry['seeds'])}",
                     f"{statistics.fmean(seconds):.1f}" if seconds else "—",
                     "; ".join(x for x in (numbers, failures) if x)])
    return _table(["notebook", "seeds ok", "mean time (s)", "headline numbers (mean ± std)"],
                  body, {"mean time (s)": "---:"})


def summary_markdown(rows: list[dict], quick: bool) -> str:
    """The summary table of a batch run, in Markdown; a column empty in every row (no
    notebook recorded a number nor failed, say) is left out. A run over several seeds
    gives one row per notebook with each number's mean ± std over the seeds, then the
    table of every notebook and seed."""
    seeds = sorted({r["seed"] for r in rows if r.get("seed") is not None})
    columns = {
        "notebook": [r["notebook"] for r in rows],
        "seed": [str(r.get("seed")) for r in rows],
        "status": [r["status"] for r in rows],
        "time (s)": ["—" if r["seconds"] is None else str(r["seconds"]) for r in rows],
        "headline numbers": [
            (_format_metrics(r["metrics"]) if r["status"] == "ok" else r["error"] or "")
            for r in rows
        ],
    }
    columns = {k: v for k, v in columns.items()
               if k in ("notebook", "status") or (k == "seed" and seeds)
               or (k != "seed" and any(x not in ("", "—") for x in v))}
    lines = [f"# Batch run ({'quick' if quick else 'full'} mode)", ""]
    if seeds:
        lines += [f"Seeds {', '.join(map(str, seeds))}; ± is the sample standard deviation "
                  "over the seeds that ran.", "", *seeds_markdown(rows), "",
                  "## Every notebook and seed", ""]
    lines += _table(list(columns), [[str(v[i]) for v in columns.values()]
                                    for i in range(len(rows))], {"time (s)": "---:"})
    done = sum(r["status"] == "ok" for r in rows)
    runs = "notebook runs" if seeds else "notebooks"
    lines += ["", f"{done} of {len(rows)} {runs} ran without error."]
    return "\n".join(lines) + "\n"


def _write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_summary(out_dir: pathlib.Path, rows: list[dict], quick: bool) -> None:
    """Write ``summary.json`` and ``summary.md`` into ``out_dir``, each atomically. In a run
    over seeds, ``summary.json`` also holds the per-seed values and spread (``seeds``)."""
    data = {"mode": "quick" if quick else "full", "notebooks": rows}
    if any(r.get("seed") is not None for r in rows):
        data["seeds"] = aggregate(rows)
    _write_atomic(out_dir / "summary.json", json.dumps(data, indent=2) + "\n")
    _write_atomic(out_dir / "summary.md", summary_markdown(rows, quick))


def machine() -> dict:
    """The machine a run is on: CPU model, logical cores, torch's thread count (which the
    kernels inherit through ``OMP_NUM_THREADS``), the GPU's name (None without CUDA) and
    the torch version."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "gpu": gpu,
            "torch": torch.__version__, "python": platform.python_version()}


def commit() -> str | None:
    """The repository's commit (``+dirty`` when tracked files have changes), or None
    outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=paths.ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    try:
        head = git("rev-parse", "HEAD")
        return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def write_results(path: str | os.PathLike, rows: list[dict], quick: bool,
                  parameters: dict) -> None:
    """Write a run's results file (JSON, atomically): mode, ``-p`` parameters, machine,
    commit, date, and per notebook each seed's status and metrics."""
    notebooks: dict[str, dict] = {}
    for row in rows:
        seed = row["seed"] if row["seed"] is not None else parameters.get("SEED", "default")
        notebooks.setdefault(row["notebook"], {})[str(seed)] = {
            "status": row["status"], "error": row["error"], "seconds": row["seconds"],
            "metrics": row["metrics"]}
    data = {"mode": "quick" if quick else "full",
            "parameters": {k: repr(v) for k, v in parameters.items()},
            "machine": machine(), "commit": commit(),
            "date": time.strftime("%Y-%m-%d", time.gmtime()), "notebooks": notebooks}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, json.dumps(data, indent=2) + "\n")


def results_markdown(data: dict | None) -> str:
    """The README's table from a results file's ``data`` (see :func:`write_results`): the
    machine, then one row per notebook and numeric headline number with mean ± std,
    min–max and the value per seed. None (no results file): a line saying so."""
    if data is None:
        return ("No sweep has been recorded in `results/full.json` yet: run `make sweep` "
                "(see below).\n")
    m = data["machine"]
    gpu = f"GPU {m['gpu']}" if m.get("gpu") else "no GPU"
    seeds = list(dict.fromkeys(s for runs in data["notebooks"].values() for s in runs))
    body = []
    for name, runs in data["notebooks"].items():
        rows = [{"notebook": name, "seed": s, **r} for s, r in runs.items()]
        (entry,) = aggregate(rows)
        for metric in entry["metrics"]:
            if "mean" not in metric:
                continue
            per_seed = ", ".join(_number(v) for v in metric["values"].values())
            body.append([name[:2], _with_unit(metric["name"], f"({metric['unit']})"
                                              if metric["unit"] else ""),
                         f"{_number(metric['mean'])} ± {_number(metric['std'])}",
                         f"{_number(metric['min'])}–{_number(metric['max'])}", per_seed])
        for s, error in entry["failed"].items():
            body.append([name[:2], f"seed {s} failed", error, "", ""])
    lines = [f"{data['mode'].capitalize()} mode, seeds {', '.join(seeds)}, on "
             f"{m['cpu']} ({m['threads']} threads, {gpu}), torch {m['torch']}, commit "
             f"`{(data.get('commit') or 'unknown')[:12]}`, {data.get('date', '')}; ± is the "
             "sample standard deviation over the seeds.", ""]
    lines += _table(["#", "headline number", "mean ± std", "min–max", "per seed"], body, {})
    return "\n".join(lines) + "\n"


README_BEGIN = "<!-- results:begin (generated by `make results`; do not edit) -->"
README_END = "<!-- results:end -->"


def readme_block(readme: str) -> str:
    """The text between the two results markers of the README ``readme``."""
    if readme.count(README_BEGIN) != 1 or readme.count(README_END) != 1:
        raise ValueError(f"README.md must hold the line {README_BEGIN!r} once and "
                         f"{README_END!r} once after it; put them around the results table")
    return readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip("\n") + "\n"


def load_results(path: str | os.PathLike) -> dict | None:
    """A results file's data, or None when the file does not exist."""
    path = pathlib.Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def update_readme(readme: str | os.PathLike, results: str | os.PathLike) -> bool:
    """Write the table of the results file ``results`` between the README's markers;
    returns whether the README changed."""
    readme = pathlib.Path(readme)
    text = readme.read_text(encoding="utf-8")
    readme_block(text)  # the markers are there, once each
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    new = f"{head}{README_BEGIN}\n{results_markdown(load_results(results))}{README_END}{tail}"
    if new != text:
        _write_atomic(readme, new)
    return new != text


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
        timeout: float | None = None, figures: str | os.PathLike | None = None,
        seeds: list[int] | None = None, results: str | os.PathLike | None = None
        ) -> list[dict]:
    """Run notebooks (all by default) and write the executed copies, ``summary.md`` and
    ``summary.json`` into ``out_dir``. A ``-p`` parameter goes to every notebook whose
    parameters cell defines it; one that no selected notebook defines is an error, and
    so is ``QUICK`` (the mode is ``quick``). Figures go to ``figures`` (default: the
    repository's ``figures/`` in full mode, ``out_dir/figures`` in quick mode).

    ``seeds``: run each notebook once per seed (its ``SEED``; a notebook without one is
    refused). With one seed it is ``-p SEED s``; with several the copies are
    ``NAME.seedS.ipynb`` and only the first seed's figures go to ``figures``, the others'
    to ``out_dir/figures.seedS``. ``results``: a results file to write when the run ends
    (:func:`write_results`).

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
    seeds = check_seeds(seeds, parameters, declared)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = default_figures(quick, out_dir) if figures is None else figures
    runs = [(p, s) for p in paths_ for s in seeds]
    jobs_args = [
        (p, out_dir, {k: v for k, v in parameters.items() if k in declared[p]}, quick, timeout,
         kernel_settings(quick, (pathlib.Path(figures) if s in (None, seeds[0])
                                 else out_dir / f"figures.seed{s}").resolve()), s)
        for p, s in runs
    ]
    rows = [{"notebook": p.stem, "seed": s, "status": "pending", "seconds": None,
             "metrics": [], "error": None, "output": str(output_path(p, out_dir, s))}
            for p, s in runs]
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
    if results is not None:
        write_results(results, rows, quick, parameters)
    return rows


def check_seeds(seeds: list[int] | None, parameters: dict,
                declared: dict[pathlib.Path, set[str]]) -> list[int | None]:
    """The seeds to run as a list: ``[None]`` (no ``--seeds``: one run as today), the one
    seed (as ``SEED`` of every notebook) or several; refuses repeated seeds, ``SEED`` given
    with ``-p`` too, and a notebook whose parameters cell has no ``SEED``."""
    if not seeds:
        return [None]
    if "SEED" in parameters:
        raise ValueError("SEED given twice: use --seeds 0 1 2, or -p SEED 1, not both")
    if len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"--seeds needs distinct whole numbers, e.g. --seeds 0 1 2; got {seeds}")
    missing = [p.name for p, names in declared.items() if "SEED" not in names]
    if missing:
        raise ValueError(f"{', '.join(missing)} has no SEED in its parameters cell, so "
                         "--seeds cannot vary it: add SEED to the cell, or leave that "
                         "notebook out of the selection")
    if len(seeds) == 1:
        parameters["SEED"] = seeds[0]
        return [None]
    return list(seeds)
