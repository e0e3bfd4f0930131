"""The README stays true: it links every notebook, shows only figures that exist, and its
two commands are the Makefile's, the test one being what CI runs."""

import re

from labutils.course import NOTEBOOKS
from labutils.paths import ROOT, notebooks_dir

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_notebook_is_linked_under_its_title():
    for path in sorted(notebooks_dir().glob("*.ipynb")):
        link = f"[{NOTEBOOKS[path.stem]}](notebooks/{path.name})"
        assert link in README, f"README does not link {path.name} as {link}"


def test_every_linked_file_exists():
    targets = re.findall(r"\]\(((?:notebooks|figures|data)/[^)#]+)\)", README)
    targets += re.findall(r'src="(figures/[^"]+)"', README)
    assert targets
    missing = [t for t in targets if not (ROOT / t).is_file()]
    assert not missing, f"README points at missing files: {missing}"


def test_the_two_commands_are_make_targets_and_ci_runs_the_tests():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        assert f"make {target}" in README
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no '{target}' target"
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_make_lab_passes_extra_arguments_to_jupyterlab():
    import subprocess

    proc = subprocess.run(["make", "-n", "lab",
                           "LAB_ARGS=--allow-root --port 9999"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "jupyter lab notebooks --allow-root --port 9999" in proc.stdout
