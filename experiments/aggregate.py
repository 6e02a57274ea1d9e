"""Any sweep or run folder → one tidy table (+ the run table and figures).

    python -m experiments.aggregate multirun/train_rm/2025-01-01_12-00-00 --out table.csv --figures

Writes the tidy rows of every results.csv (CSV, or Parquet with pyarrow, by extension), the run
table next to it (`<stem>_runs.<ext>`: one row per run, status and error included), and with
`--figures` the figures of each recognised table kind into `<out folder>/figures/`. Failed and
missing runs are listed on stderr. A utility, not a Hydra experiment.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rm_theory.figures.aggregate import draw_figures
from rm_theory.runs.aggregate import aggregate, write_table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.aggregate", description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, help="a run folder, a Hydra multirun folder or any folder of runs")
    ap.add_argument(
        "--out", type=Path, default=None, help="table path, .csv or .parquet (default: <folder>/aggregate.csv)"
    )
    ap.add_argument("--figures", action="store_true", help="draw the figures of the recognised tables")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    agg = aggregate(args.folder)
    out = args.out if args.out is not None else args.folder / "aggregate.csv"
    write_table(agg.table, out)
    runs_path = write_table(agg.runs, out.with_name(f"{out.stem}_runs{out.suffix}"))
    n_ok = int((agg.runs.get("status") == "ok").sum()) if not agg.runs.empty else 0
    print(f"{len(agg.runs)} runs ({n_ok} ok), {len(agg.table)} rows of kinds {agg.kinds() or 'none'}")
    print(f"table: {out}\nruns:  {runs_path}")
    if len(agg.failed):
        print(f"{len(agg.failed)} run(s) not ok:", file=sys.stderr)
        for row in agg.failed.itertuples(index=False):
            err = getattr(row, "error", None)
            print(f"  {row.run_dir}: {row.status}" + (f" ({err})" if isinstance(err, str) else ""), file=sys.stderr)
    if args.figures:
        written, errors = draw_figures(agg, out.parent / "figures")
        print(f"figures: {len(written) // 2} in {out.parent / 'figures'}")
        for name, err in errors.items():
            print(f"  figure {name} failed: {err}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
