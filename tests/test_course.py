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
