import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import labutils as lu


def _fake(monkeypatch, cuda=False, mps=False, count=1):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if cuda else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _fake(monkeypatch, cuda=cuda, mps=mps)
    assert lu.get_device("auto").type == expected


def test_explicit_choices(monkeypatch):
    _fake(monkeypatch, cuda=True, mps=False, count=2)
    assert lu.get_device("cuda:1") == torch.device("cuda:1")
    assert lu.get_device("CPU") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="2 CUDA device"):
        lu.get_device("cuda:2")
    with pytest.raises(RuntimeError, match="MPS"):
        lu.get_device("mps")


def test_unavailable_cuda_says_what_to_do(monkeypatch):
    _fake(monkeypatch, cuda=False)
    with pytest.raises(RuntimeError, match="DEVICE='auto'"):
        lu.get_device("cuda")


def test_unknown_device_name():
    with pytest.raises(ValueError, match="tpu"):
        lu.get_device("tpu")


def test_describe_names_the_gpu(monkeypatch):
    props = SimpleNamespace(name="Tesla T4", total_memory=15 * 2**30)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    text = lu.describe_device(torch.device("cuda", 0))
    assert "Tesla T4" in text and "15.0 GiB" in text
    assert lu.describe_device("cpu").startswith("cpu")


def _draw():
    return random.random(), np.random.rand(3), torch.rand(3), torch.nn.Linear(4, 2).weight


def test_seeding_gives_identical_results_twice():
    lu.seed_everything(123)
    first = _draw()
    lu.seed_everything(123)
    second = _draw()
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    torch.testing.assert_close(first[2], second[2], rtol=0, atol=0)
    torch.testing.assert_close(first[3], second[3], rtol=0, atol=0)
    lu.seed_everything(124)
    assert not torch.equal(torch.rand(3), second[2])


def test_seed_must_be_an_integer():
    with pytest.raises(TypeError, match="SEED"):
        lu.seed_everything(1.5)
