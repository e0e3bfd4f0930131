import pytest

import labutils as lu
from labutils.course import METRIC_MIME, colab_badge


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("true", True), (" YES ", True), ("0", False), ("", False)]
)
def test_quick_mode_reads_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv("LABUTILS_QUICK", raw)
    assert lu.quick_mode() is expected


def test_quick_mode_default_and_bad_value(monkeypatch):
    monkeypatch.delenv("LABUTILS_QUICK", raising=False)
    assert lu.quick_mode() is False
    assert lu.quick_mode(default=True) is True
    monkeypatch.setenv("LABUTILS_QUICK", "maybe")
    with pytest.raises(ValueError, match="LABUTILS_QUICK"):
        lu.quick_mode()


def test_record_outside_a_notebook_prints(capsys):
    lu.record("test_cer", 0.004, unit="%")
    assert capsys.readouterr().out == "test_cer = 0.004 %\n"


def test_record_converts_tensors_and_rejects_the_unserialisable(capsys):
    import torch

    lu.record("acc", torch.tensor(0.5))
    assert capsys.readouterr().out == "acc = 0.5\n"
    with pytest.raises(TypeError):
        lu.record("bad", object())
    with pytest.raises(ValueError, match="name"):
        lu.record("", 1)


def test_badge_points_at_the_notebook():
    badge = colab_badge("06_ctc")
    assert badge.startswith("[![Open In Colab]")
    assert badge.endswith("/blob/main/notebooks/06_ctc.ipynb)")
    assert lu.course.REPOSITORY in badge
    assert METRIC_MIME.startswith("application/")


def _run_setup_cell(tmp_path, monkeypatch, colab: bool, pip_result=None):
    """Execute the setup cell as on a machine without labutils (Colab or not), up to the
    point where it would import the libraries; return what it raised."""
    import importlib.util
    import subprocess
    import sys
    import types

    from labutils.course import SETUP_CELL

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "labutils" else real_find_spec(name, *a))
    monkeypatch.chdir(tmp_path)  # no clone of the repository around it
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return pip_result

    monkeypatch.setattr(subprocess, "run", fake_run)
    head = SETUP_CELL.split("import matplotlib")[0]
    with pytest.raises(Exception) as info:
        exec(head, {})
    return info.value, calls


def test_a_failed_colab_install_is_short_and_says_what_to_do(tmp_path, monkeypatch):
    import subprocess

    pip_says = "\n".join(f"line {i} of pip's log" for i in range(30)) + (
        "\nERROR: Could not find a version that satisfies the requirement")
    done = subprocess.CompletedProcess([], 1, stdout="", stderr=pip_says)
    error, calls = _run_setup_cell(tmp_path, monkeypatch, colab=True, pip_result=done)
    assert calls and calls[0][-1] == lu.course.PACKAGE
    message = str(error)
    assert isinstance(error, RuntimeError) and error.__cause__ is None
    assert "Could not find a version" in message and "line 29 of pip's log" in message
    assert "line 20 of pip's log" not in message and len(message.splitlines()) <= 8
    assert "internet connection" in message and lu.course.REPOSITORY in message


def test_missing_labutils_names_the_pip_command(tmp_path, monkeypatch):
    error, calls = _run_setup_cell(tmp_path, monkeypatch, colab=False)
    assert isinstance(error, ModuleNotFoundError) and not calls
    assert f'pip install "{lu.course.PACKAGE}"' in str(error)


def test_colab_installs_the_release_of_this_version():
    from importlib.metadata import version

    assert lu.__version__ == version("labutils") == lu.course.VERSION  # pyproject reads it
    assert lu.course.PACKAGE.endswith(f"@v{lu.__version__}")
    assert lu.course.PACKAGE in lu.course.SETUP_CELL
