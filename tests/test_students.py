"""Student versions: no solution survives, and each runs top to bottom in quick mode with
only the exercise cells (the student's code and its check) raising."""

import nbformat
import pytest

from labutils import notebooks, runner

PATHS = runner.resolve(None)


def _split_lines(nb) -> tuple[set[str], set[str]]:
    """The stripped code lines inside solution regions, and those outside them."""
    inside, outside = set(), set()
    for cell in nb.cells:
        solution = False
        for line in cell.source.splitlines():
            if notebooks.BEGIN in line:
                solution = True
            elif notebooks.END in line:
                solution = False
            elif line.strip() and not line.strip().startswith("#"):
                (inside if solution else outside).add(line.strip())
    return inside, outside


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_student_version_hides_every_solution_and_runs(path):
    from nbclient import NotebookClient

    teacher = nbformat.read(path, as_version=4)
    student = notebooks.student_version(path)
    assert len(student.cells) == len(teacher.cells)
    text = "\n".join(c.source for c in student.cells)
    assert notebooks.BEGIN not in text and notebooks.END not in text
    for i, cell in enumerate(teacher.cells):
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith(
                notebooks.ANSWER_PREFIXES):
            assert "YOUR ANSWER HERE" in student.cells[i].source, f"cell {i} keeps its answer"
    inside, outside = _split_lines(teacher)
    student_lines = {line.strip() for line in text.splitlines()}
    leaked = sorted(line for line in inside - outside if line in student_lines)
    assert not leaked, f"solution lines left in the student version: {leaked[:3]}"

    client = NotebookClient(student, timeout=900, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    exercise = {i for i, c in enumerate(student.cells)
                if c.metadata.get("nbgrader", {}).get("solution")
                or c.metadata.get("nbgrader", {}).get("grade")}
    raised = {i: out.get("ename") for i, c in enumerate(student.cells) if c.cell_type == "code"
              for out in c.get("outputs", []) if out.get("output_type") == "error"}
    outside_exercises = {i: e for i, e in raised.items() if i not in exercise}
    assert not outside_exercises, (
        f"cells outside the exercises raised (do they use an exercise's result?): "
        f"{outside_exercises}")
