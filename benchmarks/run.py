"""Run the benchmarks: every ``benchmarks/bench_<topic>.py`` defines ``cases(quick)``.

    python benchmarks/run.py                 # all topics, full sizes
    python benchmarks/run.py ctc conv        # some topics
    python benchmarks/run.py --quick         # small sizes, a smoke run
    python benchmarks/run.py --json out.json # also write the rows as JSON

Each case is timed against its library counterpart in this one process (warm-up,
interleaved repeats, medians); the table reports the ratio ours / reference.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
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
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    available = topics()
    unknown = set(args.topics) - set(available)
    if unknown:
        parser.error(f"unknown topic(s) {sorted(unknown)}; choose from {sorted(available)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 11)
    rows = []
    for name in args.topics or sorted(available):
        for case in load_cases(available[name], args.quick):
            rows.append(compare(case, warmup=1 if args.quick else 2, repeats=repeats))
            print(f"  {case.name}: ratio {rows[-1]['ratio']:.2f}", file=sys.stderr)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {repeats} repeats")
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
