import importlib.util
import pathlib

import pytest
import torch

from labutils.bench import Case, compare, format_table, forward_backward, time_side_by_side

BENCHMARKS = sorted((pathlib.Path(__file__).parents[1] / "benchmarks").glob("bench_*.py"))


def test_compare_interleaves_and_reports_median_ratio():
    clock, calls = [0.0], []

    def work(name, seconds):
        def go():
            calls.append(name)
            clock[0] += seconds
        return go

    case = Case("demo", work("ours", 3.0), work("ref", 1.0), target=2.0, check=False)
    row = compare(case, warmup=1, repeats=3, threads=1, timer=lambda: clock[0])
    # one warm-up call each, then per repeat the Timer's 2 untimed calls and 1 timed one,
    # ours first in even repeats and reference first in odd ones
    blocks = [calls[i] for i in range(2, len(calls), 3)]
    assert calls[:2] == ["ours", "ref"] and len(calls) == 2 + 3 * 6
    assert blocks == ["ours", "ref", "ref", "ours", "ours", "ref"]
    assert row["ours_ms"] == 3000 and row["reference_ms"] == 1000
    assert row["ratio"] == 3.0 and row["meets_target"] is False and row["threads"] == 1
    assert "MISSED" in format_table([row])


def test_forward_backward_returns_output_and_gradients():
    x = torch.randn(5, dtype=torch.float64)
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    got = forward_backward(lambda v, k: (v * w).sum() * k, x, 3.0, wrt=[w])()
    torch.testing.assert_close(got, torch.cat([(x * w).sum().reshape(1) * 3, 3 * w.detach(),
                                               3 * x]))
    square = forward_backward(lambda v: 2 * v, x)()   # non-scalar: mean of squares
    torch.testing.assert_close(square, torch.cat([2 * x, 8 * x / 5]))


def test_time_side_by_side_rotates_the_order():
    calls = []
    clock = [0.0]
    cost = {"a": 1.0, "b": 2.0, "c": 4.0}
    fns = {name: (lambda n=name: (calls.append(n), clock.__setitem__(0, clock[0] + cost[n])))
           for name in "abc"}
    times = time_side_by_side(fns, warmup=1, repeats=3, threads=1, timer=lambda: clock[0])
    timed = calls[3::3]   # after the warm-up, every third call is the timed one
    assert calls[:3] == [*"abc"] and timed == [*"abc", *"bca", *"cab"]
    assert times == {"a": [1.0] * 3, "b": [2.0] * 3, "c": [4.0] * 3}
    with pytest.raises(ValueError, match="repeats"):
        time_side_by_side(fns, repeats=0)


def test_compare_checks_results_first():
    case = Case("wrong", lambda: torch.ones(3), lambda: torch.zeros(3))
    with pytest.raises(AssertionError, match="wrong: results differ"):
        compare(case, repeats=1)


@pytest.mark.parametrize("path", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_cases_run_and_agree_with_their_reference(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = module.cases(quick=True)
    assert cases, f"{path.name} defines no case"
    for case in cases:
        row = compare(case, warmup=0, repeats=1)
        assert row["ratio"] > 0
