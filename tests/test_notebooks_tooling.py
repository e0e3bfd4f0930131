"""`python -m labutils new` and the exercise metadata that `sync` writes."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from labutils import course, notebooks


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A copy of course.py and an empty notebooks folder, so `new` edits nothing real."""
    course_copy = tmp_path / "course.py"
    course_copy.write_text(open(course.__file__, encoding="utf-8").read(), encoding="utf-8")
    monkeypatch.setattr(course, "__file__", str(course_copy))
    monkeypatch.setattr(course, "NOTEBOOKS", dict(course.NOTEBOOKS))
    monkeypatch.setattr(notebooks, "notebooks_dir", lambda: tmp_path / "notebooks")
    return tmp_path


def test_new_creates_a_listed_notebook_with_every_part(sandbox):
    path = notebooks.new("10_kalman_filters", "Kalman   filters and RNNs")
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].source.startswith("# 10 · Kalman filters and RNNs\n")
    assert nb.cells[1].source == course.SETUP_CELL
    assert nb.cells[2].metadata["tags"] == ["parameters"]
    assert "QUICK = lu.quick_mode()" in nb.cells[2].source
    kinds = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert [k for k in kinds if k] == ["solution-1", "check-1", "answer-1", "answer-2"]
    assert notebooks.synced(path) is None   # already in sync
    text = (sandbox / "course.py").read_text(encoding="utf-8")
    assert '"10_kalman_filters": "Kalman filters and RNNs",' in text
    assert text.index('"09_speaker') < text.index('"10_kalman')
    compile(text, "course.py", "exec")


def test_new_refuses_bad_names_taken_numbers_and_existing_files(sandbox):
    with pytest.raises(ValueError, match="two digits"):
        notebooks.new("Kalman", "Kalman filters")
    with pytest.raises(ValueError, match="already belongs to 06_ctc"):
        notebooks.new("06_other", "Other")
    with pytest.raises(ValueError, match="title of 1 to"):
        notebooks.new("10_kalman", "   ")
    notebooks.new("10_kalman", "Kalman")
    with pytest.raises(FileExistsError):
        notebooks.new("10_kalman", "Kalman")


def test_exercise_metadata_marks_solutions_checks_and_answers():
    cells = [
        new_markdown_cell("**Exercise 1.** Write f."),
        new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
        new_markdown_cell("A hint between the solution and its check."),
        new_code_cell("assert f(2) == 4"),
        new_code_cell("print('an ordinary cell')"),
        new_markdown_cell("**Your prediction.** It doubles."),
        new_markdown_cell("**Answer.** Because f is linear."),
    ]
    meta = notebooks.exercise_metadata(cells)
    assert sorted(meta) == [1, 3, 5, 6]
    assert meta[1]["solution"] and not meta[1]["grade"]
    assert meta[3]["grade"] and meta[3]["locked"] and not meta[3]["solution"]
    assert meta[5]["grade_id"] == "answer-1" and meta[6]["grade_id"] == "answer-2"
    assert all(m["solution"] and m["grade"] for m in (meta[5], meta[6]))
