"""A static HTML site of the series, built from an executed batch run: an index page
(the notebooks, their headline numbers, a gallery of figures) and one page per notebook
with its outputs, figures and audio players. It works offline: MathJax is served from the
site itself."""

from __future__ import annotations

import html
import json
import pathlib
import re
import shutil

import nbformat

from labutils.course import NOTEBOOKS, colab_url, repository_url
from labutils.notebooks import BADGE
from labutils.runner import ROOT

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; }
table { border-collapse: collapse; width: 100%; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 6px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
.failed { color: #b00020; font-weight: bold; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr));
           gap: 14px; }
.gallery figure { margin: 0; } .gallery img { width: 100%; border: 1px solid #eee; }
.gallery figcaption { font-size: 0.85em; color: #555; }
nav.series { font-family: system-ui, sans-serif; padding: 8px 16px; background: #f4f4f4;
             border-bottom: 1px solid #ddd; display: flex; gap: 1.5em; }
"""


def _mathjax(out: pathlib.Path) -> str | None:
    """Copy MathJax into the site; its address relative to a page, or None if absent."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    source = pathlib.Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(source, out / "mathjax", dirs_exist_ok=True)
    return "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"


def _nav(index: int, names: list[str]) -> str:
    links = ['<a href="index.html">Index</a>']
    if index > 0:
        links.append(f'<a href="{names[index - 1]}.html">← {names[index - 1][:2]}</a>')
    if index + 1 < len(names):
        links.append(f'<a href="{names[index + 1]}.html">{names[index + 1][:2]} →</a>')
    links.append(f'<a href="{colab_url(names[index])}">Open in Colab</a>')
    return f'<nav class="series">{" ".join(links)}</nav>'


LOCAL_LINK = re.compile(r"\]\((?!https?:|#|mailto:)([^)\s]+)\)")


def _site_link(target: str, pages: set[str]) -> str:
    """Where a notebook's relative link points on the site: another page, a copied figure,
    or the file in the repository."""
    file, _, anchor = target.partition("#")
    anchor = f"#{anchor}" if anchor else ""
    name = pathlib.PurePosixPath(file)
    if name.suffix == ".ipynb" and name.parent in {pathlib.PurePosixPath("."),
                                                    pathlib.PurePosixPath("../notebooks")}:
        return f"{name.stem}.html{anchor}" if name.stem in pages else colab_url(name.stem)
    if name.parent == pathlib.PurePosixPath("../figures"):
        return f"figures/{name.name}"
    return repository_url(str(name).removeprefix("../")) + anchor


def notebook_page(path: pathlib.Path, nav: str, mathjax: str | None,
                  pages: set[str] = frozenset()) -> str:
    """One executed notebook as a standalone HTML page (nbconvert's lab template). The
    Colab badge, an image from the web, becomes a plain link so the page works offline;
    links to other notebooks point at their pages (``pages``), other relative links at
    the repository."""
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            source = BADGE.sub(lambda m: f"[Open in Colab]({colab_url(path.stem)})",
                               cell.source)
            cell.source = LOCAL_LINK.sub(lambda m: f"]({_site_link(m.group(1), pages)})",
                                         source)
    exporter = HTMLExporter(template_name="lab")
    if mathjax:
        exporter.mathjax_url = mathjax
    body, _ = exporter.from_notebook_node(nb)
    # require.js is fetched from a CDN and only needed for widget state, which we never save
    body = re.sub(r'<script src="https?://[^"]*require[^"]*"[^>]*>\s*</script>', "", body)
    nav_style = "<style>" + STYLE[STYLE.index("nav.series"):] + "</style>"
    body = body.replace("</head>", f"{nav_style}</head>", 1)
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, body, count=1)


def _metrics(row: dict) -> str:
    parts = []
    for m in row.get("metrics", []):
        value = m["value"]
        if value is None:
            text = "—"
        elif isinstance(value, float):
            text = f"{value:.4g}"
        else:
            text = str(value)
        unit = f" {m['unit']}" if m.get("unit") and value is not None else ""
        parts.append(f"{html.escape(m['name'])} = {html.escape(text)}{html.escape(unit)}")
    return "<br>".join(parts)


def index_page(rows: list[dict], mode: str, figures: list[str]) -> str:
    """The index: one row per notebook (title, status, time, headline numbers), then the
    figure gallery."""
    lines = []
    for row in rows:
        name = row["notebook"]
        title = html.escape(NOTEBOOKS.get(name, name))
        status = row["status"]
        cls = "" if status == "ok" else ' class="failed"'
        what = _metrics(row) if status == "ok" else html.escape(row.get("error") or "")
        lines.append(
            f'<tr><td>{name[:2]}</td><td><a href="{name}.html">{title}</a></td>'
            f"<td{cls}>{html.escape(status)}</td><td class=\"num\">{row.get('seconds')}</td>"
            f"<td>{what}</td></tr>")
    gallery = "".join(
        f'<figure><a href="figures/{f}"><img src="figures/{f}" alt="{html.escape(f)}"></a>'
        f"<figcaption>{html.escape(f)}</figcaption></figure>" for f in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Deep Learning for Signal Processing</title><style>{STYLE}</style></head>
<body>
<h1>Deep Learning for Signal Processing</h1>
<p>Each notebook builds a method from its equations, checks the code against a reference,
runs it on data in the real data set's format, and ends with figures and audio. These pages
show one executed run ({html.escape(mode)} mode).</p>
<table><thead><tr><th>#</th><th>notebook</th><th>status</th><th>time (s)</th>
<th>headline numbers</th></tr></thead><tbody>
{chr(10).join(lines)}
</tbody></table>
<h2>Figures</h2>
<div class="gallery">{gallery}</div>
</body></html>
"""


def build(run_dir: str | pathlib.Path = "runs/full", out: str | pathlib.Path = "site"
          ) -> pathlib.Path:
    """Build the site from a batch run's folder (its ``summary.json``, executed notebooks
    and figures) into ``out``; returns the index page's path."""
    run_dir, out = pathlib.Path(run_dir), pathlib.Path(out)
    summary = run_dir / "summary.json"
    if not summary.is_file():
        raise FileNotFoundError(
            f"{run_dir} holds no batch run (no summary.json): run `make full` first, or "
            "`python -m labutils run --out runs/quick` and build with --run runs/quick")
    run = json.loads(summary.read_text(encoding="utf-8"))
    rows = [r for r in run["notebooks"] if (run_dir / f"{r['notebook']}.ipynb").is_file()]
    if not rows:
        raise FileNotFoundError(f"{run_dir}: the summary lists no executed notebook that exists")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    mathjax = _mathjax(out)
    names = [r["notebook"] for r in rows]
    for i, name in enumerate(names):
        page = notebook_page(run_dir / f"{name}.ipynb", _nav(i, names), mathjax, set(names))
        (out / f"{name}.html").write_text(page, encoding="utf-8")
    figure_dir = run_dir / "figures" if (run_dir / "figures").is_dir() else ROOT / "figures"
    figures = sorted(p.name for p in figure_dir.glob("*.png"))
    (out / "figures").mkdir()
    for name in figures:
        shutil.copy2(figure_dir / name, out / "figures" / name)
    for extra in sorted((ROOT / "figures").glob("*.png")):   # figures the prose shows
        if not (out / "figures" / extra.name).exists():
            shutil.copy2(extra, out / "figures" / extra.name)
    index = out / "index.html"
    index.write_text(index_page(rows, run.get("mode", "?"), figures), encoding="utf-8")
    return index
