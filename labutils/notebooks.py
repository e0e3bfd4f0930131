"""Keeping the notebooks' shared cells in step with ``labutils.course``, the exercise
metadata, and ``new``: a notebook that already follows every convention."""

from __future__ import annotations

import json
import pathlib
import re

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from labutils import course
from labutils.course import SETUP_CELL, colab_badge
from labutils.paths import notebooks_dir

BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
ANSWER_PREFIXES = ("**Answer.**", "**Your prediction.**")


def exercise_metadata(cells) -> dict[int, dict]:
    """nbgrader metadata for the exercise cells, by cell index.

    A code cell holding ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` is a solution cell
    and the next code cell is its (locked, graded) check; a Markdown cell that begins with
    ``**Answer.**`` or ``**Your prediction.**`` is a written answer: the text between
    ``<!-- ### BEGIN SOLUTION -->`` and ``<!-- ### END SOLUTION -->`` (or, without them,
    the whole cell) becomes "YOUR ANSWER HERE" in the student version. Ids count from 1
    in notebook order.
    """
    found: dict[int, dict] = {}
    solutions = answers = 0
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and BEGIN in cell.source:
            solutions += 1
            found[i] = {"grade": False, "grade_id": f"solution-{solutions}", "locked": False,
                        "schema_version": 3, "solution": True, "task": False}
            check = next((j for j in range(i + 1, len(cells)) if cells[j].cell_type == "code"),
                         None)
            if check is not None and BEGIN not in cells[check].source:
                found[check] = {"grade": True, "grade_id": f"check-{solutions}",
                                "locked": True, "points": 1, "schema_version": 3,
                                "solution": False, "task": False}
        elif cell.cell_type == "markdown" and cell.source.lstrip().startswith(ANSWER_PREFIXES):
            answers += 1
            found[i] = {"grade": True, "grade_id": f"answer-{answers}", "locked": False,
                        "points": 1, "schema_version": 3, "solution": True, "task": False}
    return found


def synced(path: pathlib.Path, strip: bool = False) -> str | None:
    """The text of one notebook with the canonical setup cell (cell 1), Colab badge (in
    cell 0) and exercise metadata, and with ``strip`` no outputs or execution counts;
    None if unchanged."""
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    title = nb.cells[0]
    if title.cell_type != "markdown" or not title.source.startswith("# "):
        raise ValueError(f"{path.name}: cell 0 must be the Markdown title ('# NN · Title')")
    badge = colab_badge(path.stem)
    if BADGE.search(title.source):
        title.source = BADGE.sub(lambda _: badge, title.source)
    else:
        first, _, rest = title.source.partition("\n")
        title.source = f"{first}\n\n{badge}\n{rest}"
    if len(nb.cells) > 1 and nb.cells[1].cell_type == "code" and "# Setup" in nb.cells[1].source:
        nb.cells[1].source = SETUP_CELL
    else:
        nb.cells.insert(1, new_code_cell(SETUP_CELL))
    exercises = exercise_metadata(nb.cells)
    for i, cell in enumerate(nb.cells):
        if i in exercises:
            cell.metadata["nbgrader"] = exercises[i]
        else:
            cell.metadata.pop("nbgrader", None)
    if strip:
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
    after = nbformat.writes(nb) + "\n"
    return None if after == text else after


def sync_all(strip: bool = False, check: bool = False) -> list[pathlib.Path]:
    """Sync every notebook in ``notebooks/`` (with ``check``, report without writing)."""
    changed = []
    for path in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        text = synced(path, strip)
        if text is not None:
            changed.append(path)
            if not check:
                path.write_text(text, encoding="utf-8")
    return changed


# ---------------------------------------------------------------------------------------
# python -m labutils new NN_name "Title"

MAX_TITLE = 70
NAME = re.compile(r"^(\d\d)_[a-z0-9]+(?:_[a-z0-9]+)*$")

_PARAMETERS = '''\
QUICK = lu.quick_mode()   # from LABUTILS_QUICK (CI sets 1); papermill -p QUICK overrides it
SEED = 0
DEVICE = "auto"           # "auto", "cuda", "mps" or "cpu"
DATA_DIR = None           # None: $LABUTILS_DATA, else the user cache
N_POINTS = 200 if QUICK else 2000    # every size and epoch count is a parameter'''

_TEMPLATE = [
    ("markdown", """\
# {number} · {title}

One paragraph: what this notebook is about, and why it matters for signal processing.

**What you will learn**
- the idea, from its equation to the few lines that implement it;
- a check of that code against a reference implementation;
- an experiment on data in the real data set's format, with figures and audio.

**Prerequisites:** 00 (how the series works).

**Run time:** quick mode (CPU) about 20 s · full mode (T4) about 5 min"""),
    ("code", "{setup}"),
    ("code", _PARAMETERS),
    ("code", """\
lu.seed_everything(SEED)
device = lu.get_device(DEVICE)
print(lu.describe_device(device))"""),
    ("markdown", """\
## 1 · The idea

The equation, e.g. the mean of $N$ samples, $\\bar x = \\frac{{1}}{{N}}\\sum_{{n=1}}^{{N}} x_n$;
then the few lines that implement it, and a check against the reference."""),
    ("code", """\
x = torch.randn(N_POINTS)
mean = x.sum() / len(x)
assert torch.allclose(mean, x.mean()), (mean, x.mean())
print(f"mean of {{N_POINTS}} samples: {{mean:.4f}}")"""),
    ("markdown", """\
## Exercises

**Exercise 1 · Implement and check.** Write `variance(x)`, the mean squared deviation from
the mean, without `torch.var` (it is off limits: the check disables it)."""),
    ("code", """\
def variance(x):
    \"\"\"Population variance of a 1-D tensor (N,) -> scalar tensor.\"\"\"
    ### BEGIN SOLUTION
    return ((x - x.mean()) ** 2).mean()
    ### END SOLUTION"""),
    ("code", """\
from unittest import mock

probe = torch.randn(7, generator=torch.Generator().manual_seed(1)) * 3 + 1
expected = ((probe - probe.mean()) ** 2).sum().item() / len(probe)
with mock.patch("torch.var", side_effect=AssertionError("torch.var is off limits here")):
    got = float(variance(probe))
assert abs(got - expected) < 1e-5, (
    f"variance: expected {{expected:.5f}}, got {{got:.5f}} on {{probe}}")
print("Exercise 1: correct")"""),
    ("markdown", """\
**Exercise 2 · Predict, then run.** If every sample is doubled, what happens to the
variance? Write your prediction below, then run the next cell."""),
    ("markdown", """\
**Your prediction.**
<!-- ### BEGIN SOLUTION -->
It is multiplied by four.
<!-- ### END SOLUTION -->"""),
    ("code", """\
var_x, var_2x = x.var(unbiased=False), (2 * x).var(unbiased=False)
print(f"variance of x: {{var_x:.4f}}; of 2x: {{var_2x:.4f}} ({{var_2x / var_x:.1f}} times)")"""),
    ("markdown", """\
**Exercise 3 · Open question.** Why does the unbiased estimator divide by $N - 1$?"""),
    ("markdown", """\
**Answer.**
<!-- ### BEGIN SOLUTION -->
The deviations are taken from the sample mean, which is fitted to the same samples, so
they are smaller on average than those from the true mean; dividing by $N-1$ corrects that
bias exactly.
<!-- ### END SOLUTION -->"""),
    ("markdown", """\
## Summary

What the notebook showed, each claim with the number it printed above."""),
    ("code", """\
lu.record("mean", mean, note=f"{{N_POINTS}} standard normal samples")"""),
]


def _add_to_series(name: str, title: str) -> None:
    """Add ``name: title`` to ``NOTEBOOKS`` in labutils/course.py (in number order), or
    replace the title of an entry that has no notebook yet."""
    path = pathlib.Path(course.__file__)
    text = path.read_text(encoding="utf-8")
    start = text.index("NOTEBOOKS = {\n") + len("NOTEBOOKS = {\n")
    end = text.index("}\n", start)
    entries = dict(course.NOTEBOOKS)
    entries[name] = title
    body = "".join(f"    {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n"
                   for k, v in sorted(entries.items()))
    path.write_text(text[:start] + body + text[end:], encoding="utf-8")
    course.NOTEBOOKS.clear()
    course.NOTEBOOKS.update(sorted(entries.items()))


def new(name: str, title: str) -> pathlib.Path:
    """Create ``notebooks/<name>.ipynb`` from the template (title, setup, parameters, a
    section, one exercise of each kind, a summary) and list it in ``course.NOTEBOOKS``."""
    match = NAME.match(name)
    if not match:
        raise ValueError(f"notebook name {name!r} must look like '07_wav2vec': two digits, "
                         "an underscore, lower-case words joined by underscores")
    title = " ".join(title.split())
    if not title or len(title) > MAX_TITLE:
        raise ValueError(f"give the notebook a title of 1 to {MAX_TITLE} characters (it heads the "
                         f"notebook and its README row); got {len(title)}")
    number = match.group(1)
    taken = [n for n in course.NOTEBOOKS if n[:2] == number and n != name]
    if taken:
        raise ValueError(f"number {number} already belongs to {taken[0]}; choose a free number "
                         "or use that name")
    path = notebooks_dir() / f"{name}.ipynb"
    if path.exists():
        raise FileExistsError(f"{path} exists already; edit it, or remove it first")
    cells = []
    for kind, text in _TEMPLATE:
        source = text.format(number=number, title=title, setup=SETUP_CELL)
        cells.append(new_markdown_cell(source) if kind == "markdown" else new_code_cell(source))
    cells[2].metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    _add_to_series(name, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    path.write_text(synced(path) or path.read_text(encoding="utf-8"), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------
# python -m labutils student: the version of each notebook to hand to a class


def student_version(path: pathlib.Path):
    """The student version of one notebook, as nbgrader's assignment step makes it: each
    solution region becomes ``# YOUR CODE HERE`` / ``raise NotImplementedError()``, each
    written answer "YOUR ANSWER HERE", checks are kept and locked, outputs are cleared."""
    from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, ClearSolutions, LockCells

    text = synced(path)
    nb = nbformat.reads(text, as_version=4) if text else nbformat.read(path, as_version=4)
    resources: dict = {}
    for step in (ClearSolutions(), LockCells(), ClearOutput(), CheckCellMetadata()):
        nb, resources = step.preprocess(nb, resources)
    return nb


def write_students(out: str | pathlib.Path = "students", names: list[str] | None = None):
    """Write ``<out>/NN_name.ipynb`` for every notebook (or those named); returns the paths."""
    from labutils.runner import resolve

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in resolve(names):
        target = out / path.name
        tmp = target.with_name(f".{target.name}.tmp")
        nbformat.write(student_version(path), tmp)
        tmp.replace(target)
        written.append(target)
    return written
