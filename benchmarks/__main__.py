"""``python -m benchmarks``: run the suite and write ``benchmarks/results/RESULTS.md``.

    python -m benchmarks                     # everything (about 15 minutes)
    python -m benchmarks --quick             # tiny sizes, one repetition (a smoke run)
    python -m benchmarks --only overhead,import
    python -m benchmarks --skip makespan --out /tmp/bench
    python -m benchmarks --report benchmarks/results/results.json   # re-render only

Benchmarks: overhead, uvloop, memory, makespan, skew, coldstart, import, streams,
sources (every event source against its floor, paired in one interpreter). The run states its
expected duration when it starts, and writes into a temporary directory: the results
replace the previous ones only when every benchmark has finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from ._report import main as rerender
from ._report import summarise, targets_table, write_report
from ._suite import BENCHMARKS, FULL, QUICK, run_suite

RESULTS = Path(__file__).resolve().parent / "results"


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    return names


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and one repetition; writes to a temporary directory "
                             "unless --out is given")
    parser.add_argument("--only", type=_names, metavar="A,B",
                        help=f"run only these benchmarks ({', '.join(BENCHMARKS)})")
    parser.add_argument("--skip", type=_names, metavar="A,B", default=[],
                        help="run every benchmark but these")
    parser.add_argument("--reps", type=int, metavar="N",
                        help="fresh interpreters per measurement (overrides the defaults)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where to write RESULTS.md, results.json and the plots "
                             "(default: benchmarks/results, or a temporary directory with "
                             "--quick)")
    parser.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                        help="only re-render RESULTS.md and the plots from a results.json")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.report is not None:
        rerender(str(args.report))
        print(args.report.parent / "RESULTS.md")
        return 0
    selected = args.only or list(BENCHMARKS)
    selected = [b for b in selected if b not in args.skip]
    settings = QUICK if args.quick else FULL
    if args.reps is not None:
        if args.reps < 1:
            raise SystemExit("--reps must be >= 1")
        settings = dataclasses.replace(
            settings, reps={n: args.reps for n in settings.reps},
            makespan_reps={loop: args.reps for loop in settings.makespan_reps},
            skew_reps={loop: args.reps for loop in settings.skew_reps},
            import_reps=max(args.reps, 3), coldstart_reps=max(args.reps, 3))
    out = args.out
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="asyncbatch-bench-")) if args.quick else RESULTS
    data = run_suite(settings, selected, out, quick=args.quick, quiet=args.quiet,
                     report=write_report, summarise=summarise)
    rows = summarise(data)["issue14"]
    if rows:
        print("current targets:")
        print("\n".join(targets_table(rows)))
        print()
    if "sources" in selected and (out / "sources.md").exists():
        table = [line for line in (out / "sources.md").read_text(encoding="utf-8").splitlines()
                 if line.startswith("|")]
        print("every source against its floor (sources.md):")
        print("\n".join(table))
        print()
    print(out / "RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
