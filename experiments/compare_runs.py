"""Two run folders' summaries, key by key (exit status 1 if any number differs).

    python -m experiments.compare_runs outputs/reproduce/quick before/outputs/reproduce/quick

Compares every `summary.json` under the two folders, matched by relative path; wall-clock keys are
left out unless `--timing`. A utility, not a Hydra experiment.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rm_theory.runs.compare import compare_summaries, summaries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.compare_runs", description=__doc__.split("\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0: identical)")
    ap.add_argument("--timing", action="store_true", help="compare wall-clock keys too")
    args = ap.parse_args(argv)
    diffs = compare_summaries(args.a, args.b, args.rtol, args.timing)
    n_runs = len(summaries(args.a))
    for d in diffs:
        print(f"{d.run}: {d.key}: {d.a!r} != {d.b!r}")
    print(f"{n_runs} summaries compared: {len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
