"""Run the benchmarks: every ``benchmarks/bench_<topic>.py`` defines ``cases(quick)``.

    python benchmarks/run.py                   # all topics, full sizes, 1 and 2 threads
    python benchmarks/run.py ctc conv          # some topics
    python benchmarks/run.py --threads 2       # one thread count
    python benchmarks/run.py --quick           # small sizes, a smoke run
    python benchmarks/run.py --json out.json   # also write the rows as JSON

Each case is timed against its library counterpart in this one process
(torch.utils.benchmark, warm-up, at least 21 interleaved repeats, medians); the table
reports the ratio ours / reference at each thread count, with the machine's load average
before and after. Run it on a quiet machine: a loaded one slows torch's threaded kernels
more than a Python loop, and the ratios then mislead.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import platform
import sys

import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from labutils.bench import compare, format_table  # noqa: E402


def topics() -> dict[str, pathlib.Path]:
    """The benchmark modules, by topic name."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def load_cases(path: pathlib.Path, quick: bool) -> list:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cases(quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topics", nargs="*", help=f"any of {sorted(topics())}")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="at least 21 (default 21)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch thread counts to run, e.g. --threads 1 2 (default)")
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    available = topics()
    unknown = set(args.topics) - set(available)
    if unknown:
        parser.error(f"unknown topic(s) {sorted(unknown)}; choose from {sorted(available)}")
    repeats = args.repeats or (3 if args.quick else 21)
    if repeats < 21 and not args.quick:
        parser.error("--repeats must be at least 21 for a full run (medians need them)")
    if any(t < 1 for t in args.threads):
        parser.error("--threads takes positive thread counts")
    load_before = os.getloadavg()
    rows = []
    for name in args.topics or sorted(available):
        for case in load_cases(available[name], args.quick):
            for threads in args.threads:
                rows.append(compare(case, repeats=repeats, threads=threads))
                print(f"  {case.name}, {threads} thread(s): ratio {rows[-1]['ratio']:.2f}",
                      file=sys.stderr)
    load_after = os.getloadavg()
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"torch {torch.__version__}")
    print(f"{machine}; {repeats} interleaved repeats; load average (1 min) "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "repeats": repeats,
                                         "load_before": load_before, "load_after": load_after,
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
