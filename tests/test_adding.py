"""The adding-problem generator: its format, its statistics (closed forms), its seeding."""

import pytest
import torch

from labutils.data.adding import adding_problem


def test_adding_problem():
    x, y = adding_problem(20000, 30, seed=1)
    assert x.shape == (20000, 30, 2) and y.shape == (20000, 1)
    marks = x[..., 1]
    assert torch.all(marks[:, :15].sum(1) == 1) and torch.all(marks[:, 15:].sum(1) == 1)
    torch.testing.assert_close(y[:, 0], (x[..., 0] * marks).sum(1))
    # the sum of two independent U(0, 1) has mean 1 and variance 2/12
    assert ((y - 1.0) ** 2).mean().item() == pytest.approx(1 / 6, abs=0.005)
    # knowing the second number leaves the first's variance, 1/12
    second = (x[:, 15:, 0] * marks[:, 15:]).sum(1, keepdim=True)
    assert ((y - 0.5 - second) ** 2).mean().item() == pytest.approx(1 / 12, abs=0.003)
    torch.testing.assert_close(adding_problem(5, 8, seed=3)[0], adding_problem(5, 8, 3)[0])
    assert not torch.equal(adding_problem(5, 8, seed=3)[0], adding_problem(5, 8, seed=4)[0])


def test_adding_problem_argument_errors():
    with pytest.raises(ValueError, match="length"):
        adding_problem(4, 1)
    with pytest.raises(ValueError, match="lag"):
        adding_problem(4, 10, lag=9)
    with pytest.raises(ValueError, match="n >= 1"):
        adding_problem(0, 10)


def test_adding_problem_with_lag_leaves_the_end_unmarked():
    x, y = adding_problem(5000, 40, seed=2, lag=20)
    marks = x[..., 1]
    assert torch.all(marks[:, :10].sum(1) == 1) and torch.all(marks[:, 10:20].sum(1) == 1)
    assert marks[:, 20:].abs().max() == 0
    assert marks[:, 19].sum() > 0 and marks[:, 0].sum() > 0  # both ends of the span used
    torch.testing.assert_close(y[:, 0], (x[..., 0] * marks).sum(1))
