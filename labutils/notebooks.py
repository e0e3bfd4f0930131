"""Keeping the notebooks' shared cells in step with ``labutils.course``."""

from __future__ import annotations

import pathlib
import re

import nbformat

from labutils.course import SETUP_CELL, colab_badge
from labutils.runner import notebooks_dir

BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def synced(path: pathlib.Path, strip: bool = False) -> str | None:
    """The text of one notebook with the canonical setup cell (cell 1) and Colab badge
    (in cell 0), and with ``strip`` no outputs or execution counts; None if unchanged."""
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
        nb.cells.insert(1, nbformat.v4.new_code_cell(SETUP_CELL))
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
