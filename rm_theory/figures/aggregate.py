"""The figures of an aggregated folder of runs: every figure its results tables allow, each kind of
table (a study) drawn by the study's own figure list (`figures.<study>.figures`, named in the
registry of studies), the one list the study also draws into its run folder.

Scripts (`python -m experiments.aggregate --figures`) and the notebooks share these functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pandas as pd

from rm_theory.figures.common import RunTables
from rm_theory.registry import STUDIES, resolve
from rm_theory.runs.aggregate import Aggregate, read_csv
from rm_theory.runs.jsonio import read_json

log = logging.getLogger(__name__)


class _Sidecars(Mapping):
    """The other tables of a kind's runs by stem (`curves.csv` as "curves"), each concatenated over
    the runs with their `run_dir`, read when first asked for."""

    def __init__(self, root: Path, run_dirs: list[str]):
        self.root, self.run_dirs, self._read = root, run_dirs, {}
        stems = {p.stem for d in run_dirs for p in (root / d).glob("*.csv")}
        self.stems = sorted(stems - {"results"})

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self.stems:
            raise KeyError(name)
        if name not in self._read:
            frames = []
            for d in self.run_dirs:
                path = self.root / d / f"{name}.csv"
                df = read_csv(path) if path.exists() else None
                if df is not None:
                    frames.append(df.assign(run_dir=d))
            self._read[name] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return self._read[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.stems)

    def __len__(self) -> int:
        return len(self.stems)


def run_tables(agg: Aggregate, kind: str) -> RunTables:
    """A kind's rows, its runs' other tables, and the first run's config (the values a figure needs)."""
    rows = agg.of_kind(kind)
    dirs = list(rows["run_dir"].unique())
    config = {}
    for d in dirs:
        try:
            config = read_json(agg.root / d / "config.json")
            break
        except (FileNotFoundError, json.JSONDecodeError):
            continue
    return RunTables(rows, _Sidecars(agg.root, dirs), config)


def figure_specs(agg: Aggregate) -> dict[str, Callable[[], object]]:
    """`<study>_<figure>` → zero-argument function drawing it, for every study whose tables are here."""
    specs: dict[str, Callable[[], object]] = {}
    for kind in agg.kinds():
        study = STUDIES.get(kind)
        if study is None or study.figures is None:
            continue
        specs |= {f"{kind}_{name}": draw for name, draw in resolve(study.figures)(run_tables(agg, kind)).items()}
    return specs


def draw_figures(agg: Aggregate, out_dir: str | Path) -> tuple[list[Path], dict[str, str]]:
    """Writes every figure of `figure_specs` as PNG+PDF; returns the files and {figure: error}."""
    import matplotlib.pyplot as plt

    from rm_theory.figures.common import save

    out_dir = Path(out_dir)
    written, errors = [], {}
    for name, draw in figure_specs(agg).items():
        try:
            written += save(draw(), out_dir / name)
        except Exception as err:  # one bad table must not cost the other figures
            errors[name] = f"{type(err).__name__}: {err}"
            plt.close("all")
            log.warning("figure %s failed: %s", name, errors[name])
    return written, errors
