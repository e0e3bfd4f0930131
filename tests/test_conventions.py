"""The series' conventions (CONTRIBUTING.md), checked on every notebook and on the repo."""

import ast
import re

import nbformat
import pytest
from papermill.translators import PythonTranslator

from labutils import notebooks, paths, runner
from labutils.course import NOTEBOOKS, REPOSITORY, SETUP_CELL, colab_badge

ROOT = paths.ROOT
PATHS = sorted(paths.notebooks_dir().glob("*.ipynb"))
REQUIRED_PARAMETERS = {"QUICK", "SEED", "DEVICE", "DATA_DIR"}
DATA_SUFFIXES = {".pt", ".pth", ".wav", ".flac", ".edf", ".npz", ".npy", ".csv", ".h5", ".pkl"}


def _read(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def _assigned(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _repository_files():
    skip = {".git", ".venv", "runs", "figures", "build", "__pycache__", ".pytest_cache",
            ".ruff_cache", ".hypothesis", ".ipynb_checkpoints"}
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if rel.parts[0].endswith(".egg-info") or set(rel.parts) & skip:
            continue
        if path.is_file():
            yield path


def test_the_series_has_notebooks():
    assert PATHS and PATHS[0].name == "00_start_here.ipynb"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
class TestNotebook:
    def test_name_is_in_the_numbering_list(self, path):
        assert path.stem in NOTEBOOKS, f"{path.name}: not in labutils.course.NOTEBOOKS"

    def test_committed_without_outputs_and_with_python3(self, path):
        nb = _read(path)
        assert nb.metadata.kernelspec.name == "python3"
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                assert cell.outputs == [], f"cell {i} has outputs: run make sync"
                assert cell.execution_count is None, f"cell {i} has an execution count"

    def test_title_cell(self, path):
        title = _read(path).cells[0]
        assert title.cell_type == "markdown"
        heading = f"# {path.stem[:2]} · {NOTEBOOKS[path.stem]}\n"
        assert title.source.startswith(heading), (
            f"the title must read {heading!r}: the title lives in labutils/course.py NOTEBOOKS")
        assert colab_badge(path.stem) in title.source, "run `python -m labutils sync`"
        run_time = re.search(r"\*\*Run time:\*\*.*quick mode.*\d.*full mode.*\d", title.source)
        assert run_time, "the title cell needs '**Run time:** quick mode ... · full mode ...'"
        assert "Prerequisites" in title.source

    def test_setup_cell_is_the_shared_one(self, path):
        assert _read(path).cells[1].source == SETUP_CELL, "run `python -m labutils sync`"

    def test_one_parameters_cell_with_the_shared_names(self, path):
        cells = _read(path).cells
        tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
        assert tagged == [2], f"exactly one cell, the third, must be tagged 'parameters': {tagged}"
        source = cells[2].source
        assert REQUIRED_PARAMETERS <= runner.parameter_names(path)
        assert re.search(r"^QUICK = lu\.quick_mode\(\)", source, re.M)
        seen_by_papermill = {p.name for p in PythonTranslator.inspect(cells[2])}
        assert seen_by_papermill == runner.parameter_names(path), (
            "papermill cannot parse some parameter lines (keep one plain assignment a line)")

    def test_later_cells_do_not_reassign_parameters(self, path):
        cells = _read(path).cells
        params = runner.parameter_names(path)
        for i, cell in enumerate(cells[3:], start=3):
            if cell.cell_type == "code":
                clash = _assigned(cell.source) & params
                assert not clash, f"cell {i} reassigns parameter(s) {clash}"

    def test_seeded_and_records_its_headline_numbers(self, path):
        code = "\n".join(c.source for c in _read(path).cells if c.cell_type == "code")
        assert "lu.seed_everything(SEED)" in code
        assert "lu.record(" in code


    def test_solutions_follow_the_nbgrader_convention(self, path):
        cells = _read(path).cells
        for i, cell in enumerate(cells):
            begins, ends = cell.source.count(notebooks.BEGIN), cell.source.count(notebooks.END)
            assert begins == ends, f"cell {i}: unmatched solution markers"
            if begins and cell.cell_type == "markdown":
                assert cell.source.lstrip().startswith(notebooks.ANSWER_PREFIXES), (
                    f"cell {i}: in Markdown, markers only wrap the text of an answer cell")
                assert f"<!-- {notebooks.BEGIN} -->" in cell.source, (
                    f"cell {i}: in Markdown, write the markers as HTML comments")
            elif begins:
                assert cell.source.index(notebooks.BEGIN) < cell.source.index(notebooks.END)
                check = next((c for c in cells[i + 1:] if c.cell_type == "code"), None)
                assert check is not None and "assert" in check.source, (
                    f"cell {i}: a solution needs an automatic check (assert) in the next code cell")


    def test_at_least_four_exercises_of_the_three_kinds(self, path):
        cells = _read(path).cells
        for i, cell in enumerate(cells):
            hidden = ("solution" in cell.metadata.get("tags", []) or "cellView" in cell.metadata
                      or cell.metadata.get("jupyter", {}).get("source_hidden"))
            assert not hidden, (f"cell {i}: solutions are not hidden with tags, cellView or "
                                "source_hidden; use the ### BEGIN/END SOLUTION markers")
        exercises = [m for c in cells if c.cell_type == "markdown"
                     for m in re.findall(r"^\*\*Exercise \d+", c.source, re.M)]
        assert len(exercises) >= 4, f"{len(exercises)} exercises ('**Exercise N'), not 4"
        assert any(notebooks.BEGIN in c.source for c in cells), "no implement-and-check exercise"
        starts = [c.source.lstrip() for c in cells if c.cell_type == "markdown"]
        assert any(s.startswith("**Your prediction.**") for s in starts), "no predict-then-run"
        assert any(s.startswith("**Answer.**") for s in starts), "no open question with an answer"


def test_sync_has_nothing_to_change():
    assert notebooks.sync_all(check=True) == []


def test_repository_address_is_defined_in_one_place():
    holders = [
        p.relative_to(ROOT).as_posix()
        for p in _repository_files()
        if p.suffix != ".ipynb" and p.suffix not in {".png", ".pyc"}
        and REPOSITORY in p.read_text(encoding="utf-8", errors="ignore")
    ]
    assert holders == ["labutils/course.py"]


def test_no_large_data_files_in_the_repository():
    data = [p for p in _repository_files() if p.suffix.lower() in DATA_SUFFIXES]
    assert sum(p.stat().st_size for p in data) < 1_000_000, data


def test_sync_writes_badge_and_setup_cell_and_strips_outputs(tmp_path):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    run = new_code_cell("print(1)", execution_count=3, outputs=[new_output("stream", text="1")])
    nb = new_notebook(cells=[new_markdown_cell("# 07 · Title\nText"),
                             new_code_cell("# Setup (old)\nimport os"), run])
    path = tmp_path / "07_wav2vec.ipynb"
    nbformat.write(nb, path)
    text = notebooks.synced(path, strip=True)
    synced = nbformat.reads(text, as_version=4)
    assert synced.cells[0].source == f"# 07 · Title\n\n{colab_badge('07_wav2vec')}\nText"
    assert synced.cells[1].source == SETUP_CELL
    assert synced.cells[2].outputs == [] and synced.cells[2].execution_count is None
    path.write_text(text)
    assert notebooks.synced(path, strip=True) is None
