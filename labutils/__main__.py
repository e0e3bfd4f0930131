"""Command line: ``python -m labutils run ...`` (batch runs), ``... results`` (the README's
table from a results file), ``... sync`` (the shared cells and exercise metadata) and
``... new NN_name "Title"`` (a new notebook)."""

from __future__ import annotations

import argparse
import os
import sys


def _run(args) -> int:
    from labutils import runner

    out = args.out or os.path.join("runs", "full" if args.full else "quick")
    params = {name: runner.parse_value(value) for name, value in args.parameter}
    try:
        rows = runner.run(args.notebooks, out, quick=not args.full, parameters=params,
                          jobs=args.jobs, timeout=args.timeout, figures=args.figures,
                          seeds=args.seeds, results=args.results)
    except runner.Interrupted as stop:
        print(runner.summary_markdown(stop.rows, quick=not args.full))
        print(f"Interrupted; summary.md / summary.json: {os.path.abspath(out)}")
        return 130
    except ValueError as err:  # a bad selection or parameter: say so, without a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(runner.summary_markdown(rows, quick=not args.full))
    print(f"Executed notebooks and summary.md / summary.json: {os.path.abspath(out)}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def _results(args) -> int:
    from labutils import runner

    if not os.path.isfile(args.results):
        print(f"note: {args.results} does not exist; the README says no sweep is recorded",
              file=sys.stderr)
    try:
        changed = runner.update_readme(args.readme, args.results)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.readme}: {'table updated' if changed else 'already up to date'} "
          f"from {args.results}")
    return 0


def _sync(args) -> int:
    from labutils import notebooks

    changed = notebooks.sync_all(strip=args.strip, check=args.check)
    for path in changed:
        print(f"{'would change' if args.check else 'updated'}: {path}")
    return 1 if (args.check and changed) else 0


def _new(args) -> int:
    from labutils import notebooks

    path = notebooks.new(args.name, args.title)
    print(f"created {path} and listed it in labutils/course.py; add its row to README.md")
    return 0


def _student(args) -> int:
    from labutils import notebooks

    for path in notebooks.write_students(args.out, args.notebooks or None):
        print(f"wrote {path}")
    return 0


def _site(args) -> int:
    from labutils import site

    index = site.build(args.run, args.out)
    print(f"site written: {index} (open it in a browser)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labutils")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks with papermill and summarise them")
    run.add_argument("notebooks", nargs="*", help="e.g. 00 06_ctc (default: all)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="quick mode (the default)")
    mode.add_argument("--full", action="store_true", help="full mode (QUICK=False)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"),
                     help="a parameter as a Python literal, e.g. -p SEED 1 -p SNR_RANGE '(0, 5)'")
    run.add_argument("--jobs", type=int, default=1, help="notebooks run at the same time")
    run.add_argument("--out", default=None, help="output folder (default runs/quick or runs/full)")
    run.add_argument("--timeout", type=float, default=None, help="seconds per cell")
    run.add_argument("--figures", default=None,
                     help="figure folder (default: figures/ in full mode, OUT/figures in quick)")
    run.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                     help="run each notebook once per seed, e.g. --seeds 0 1 2 (sets SEED)")
    run.add_argument("--results", default=None, metavar="FILE",
                     help="also write a results file (numbers per seed, machine, commit), "
                          "e.g. results/full.json")
    run.set_defaults(func=_run)
    results = sub.add_parser("results", help="write README.md's results table from a "
                                             "results file")
    results.add_argument("--results", default="results/full.json",
                         help="the results file (default results/full.json)")
    results.add_argument("--readme", default="README.md", help="the README (default README.md)")
    results.set_defaults(func=_results)
    sync = sub.add_parser("sync", help="write the setup cell, badge and exercise metadata")
    sync.add_argument("--strip", action="store_true", help="also clear outputs")
    sync.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    sync.set_defaults(func=_sync)
    new = sub.add_parser("new", help="create a notebook that follows the series' conventions")
    new.add_argument("name", help="file name without .ipynb, e.g. 07_wav2vec")
    new.add_argument("title", help='the title, e.g. "wav2vec and wav2vec 2.0"')
    new.set_defaults(func=_new)
    student = sub.add_parser("student", help="write the student versions (no solutions)")
    student.add_argument("notebooks", nargs="*", help="e.g. 01 06_ctc (default: all)")
    student.add_argument("--out", default="students", help="output folder (default students/)")
    student.set_defaults(func=_student)
    site = sub.add_parser("site", help="build the HTML site from an executed batch run")
    site.add_argument("--run", default="runs/full", help="a batch run folder (default runs/full)")
    site.add_argument("--out", default="site", help="output folder (default site/)")
    site.set_defaults(func=_site)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
