import importlib.util
import itertools
import pathlib

import pytest
import torch

from labutils.bench import Case, compare, format_table, time_side_by_side

BENCHMARKS = sorted((pathlib.Path(__file__).parents[1] / "benchmarks").glob("bench_*.py"))


def _fake_timer(durations):
    """A clock that advances by the given durations, one per timed call."""
    ticks = itertools.accumulate(itertools.chain.from_iterable((0.0, d) for d in durations))
    return lambda: next(ticks)


def test_compare_interleaves_and_reports_median_ratio():
    calls = []
    case = Case("demo", lambda: calls.append("ours"), lambda: calls.append("ref"), target=2.0,
                check=False)
    # repeat i: ours then ref when i is even, ref then ours when odd
    durations = [3, 1, 2, 4, 6, 2]  # ours=3,ref=1 | ref=2,ours=4 | ours=6,ref=2
    row = compare(case, warmup=1, repeats=3, timer=_fake_timer(durations))
    assert calls == ["ours", "ref", "ours", "ref", "ref", "ours", "ours", "ref"]
    assert row["ours_ms"] == 4000 and row["reference_ms"] == 2000
    assert row["ratio"] == 3.0 and row["meets_target"] is False
    assert "MISSED" in format_table([row])


def test_time_side_by_side_rotates_the_order():
    calls = []
    fns = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    times = time_side_by_side(fns, warmup=1, repeats=3,
                              timer=_fake_timer([1, 2, 3, 4, 5, 6, 7, 8, 9]))
    assert calls == [*"abc", *"abc", *"bca", *"cab"]
    assert times == {"a": [1, 6, 8], "b": [2, 4, 9], "c": [3, 5, 7]}
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
