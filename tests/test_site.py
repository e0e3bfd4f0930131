"""The rendered site: built from a batch run, and opened in a real (headless) browser."""

import json
import pathlib

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from labutils import course, runner, site

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5E"
       "rkJggg==")


def _fake_run(folder: pathlib.Path) -> pathlib.Path:
    """A batch-run folder with two executed notebooks (one failed) and one figure."""
    folder.mkdir()
    title = f"# 00 · Start here\n\n{course.colab_badge('00_start_here')}\n\nSome $x^2$ maths."
    ok = new_notebook(cells=[
        new_markdown_cell(title),
        new_code_cell("plot()", outputs=[new_output("display_data", data={"image/png": PNG})]),
    ])
    nbformat.write(ok, folder / "00_start_here.ipynb")
    nbformat.write(new_notebook(cells=[new_markdown_cell("# 06 · CTC")]), folder / "06_ctc.ipynb")
    rows = [{"notebook": "00_start_here", "status": "ok", "seconds": 3.0, "error": None,
             "metrics": [{"name": "accuracy", "value": 0.875, "unit": "", "note": ""},
                         {"name": "steps", "value": None, "unit": "steps", "note": ""}]},
            {"notebook": "06_ctc", "status": "failed", "seconds": 1.0, "metrics": [],
             "error": "ValueError: bad <input> in cell 7"}]
    (folder / "summary.json").write_text(json.dumps({"mode": "quick", "notebooks": rows}))
    (folder / "figures").mkdir()
    (folder / "figures" / "start_here_vowel.png").write_bytes(b"\x89PNG fake")
    return folder


def test_site_index_pages_and_gallery(tmp_path):
    index = site.build(_fake_run(tmp_path / "run"), tmp_path / "site")
    text = index.read_text()
    assert '<a href="00_start_here.html">Start here</a>' in text
    assert "accuracy = 0.875" in text and "steps = —<" in text     # no unit after a dash
    assert 'class="failed">failed' in text and "bad &lt;input&gt; in cell 7" in text
    assert 'src="figures/start_here_vowel.png"' in text
    page = (tmp_path / "site" / "00_start_here.html").read_text()
    assert "colab-badge.svg" not in page and "Open in Colab" in page   # no image from the web
    assert 'src="mathjax/MathJax.js' in page and "require.min.js" not in page
    assert f"data:image/png;base64,{PNG}" in page
    assert '<a href="06_ctc.html">06 →</a>' in page


def test_site_needs_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="make full"):
        site.build(tmp_path / "nothing", tmp_path / "site")


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """The site of a real quick-mode batch run of notebook 00."""
    run = tmp_path_factory.mktemp("run")
    rows = runner.run(["00"], run, quick=True)
    assert [r["status"] for r in rows] == ["ok"], rows
    return site.build(run, tmp_path_factory.mktemp("site") / "site")


def test_every_page_renders_in_a_real_browser(browser, built_site, tmp_path):
    pages = sorted(built_site.parent.glob("*.html"))
    assert len(pages) >= 2
    for page in pages:
        browser.get(page.as_uri())
        broken = browser.execute_script(
            "return Array.from(document.images)"
            ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))")
        assert not broken, f"{page.name}: broken images {broken}"
        links = browser.execute_script(
            "return Array.from(document.links).map(a => a.href)"
            ".filter(h => h.startsWith('file:'))")
        missing = [h for h in links if not pathlib.Path(h[7:].split("#")[0]).exists()]
        assert not missing, f"{page.name}: links to missing files {missing}"
        text = browser.find_element("tag name", "body").text
        for bad in ("Traceback (most recent call last)", "Error displaying widget",
                    "Math Processing Error"):
            assert bad not in text, f"{page.name} shows {bad!r}"
    browser.get((built_site.parent / "00_start_here.html").as_uri())
    browser.set_script_timeout(30)
    typeset = browser.execute_async_script(
        "const done = arguments[0]; const start = Date.now();"
        "(function wait() {"  # MathJax.js may still be loading on a busy machine
        "  if (window.MathJax && MathJax.Hub) {"
        "    MathJax.Hub.Queue(() => done(document.querySelectorAll('.MathJax, mjx-container')"
        "      .length)); return; }"
        "  if (Date.now() - start > 25000) { done(-1); return; }"
        "  setTimeout(wait, 100); })();")
    assert typeset > 0, "MathJax did not load within 25 s or typeset nothing (is it in the site?)"
    browser.get(built_site.as_uri())
    shot = tmp_path / "site_index.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot of the index page: {shot}")


def test_relative_links_point_at_pages_figures_or_the_repository():
    pages = {"01_rnn_bptt"}
    assert site._site_link("01_rnn_bptt.ipynb#bptt", pages) == "01_rnn_bptt.html#bptt"
    assert site._site_link("07_wav2vec.ipynb", pages) == course.colab_url("07_wav2vec")
    assert site._site_link("../figures/lstm.png", pages) == "figures/lstm.png"
    assert site._site_link("../data/README.md", pages) == course.repository_url("data/README.md")
