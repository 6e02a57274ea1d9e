"""Figures: pure functions of result tables, returning matplotlib Figures (STYLE.md habit 6), one
module per study (`ibn_scaling`, `train_rm`, ...), the IBN drawing (`draw_ibn`), saving as PNG+PDF
(`save`), and every figure a folder of runs allows (`draw_figures`).

Importing the package selects the file-only Agg backend once, before any module imports pyplot:
figures are files, and the machines that run this have no display.
"""

import matplotlib

matplotlib.use("Agg")

from rm_theory.figures import (  # noqa: E402  (after the backend is chosen)
    ai_labels,
    analyse_data,
    best_of_n,
    design,
    finetune_rm,
    ibn_scaling,
    ideal_learner,
    multi_dim,
    real_data,
    real_design,
    real_theory,
    safe_rlhf,
    train_rm,
    win_rates,
)
from rm_theory.figures.aggregate import draw_figures, figure_specs  # noqa: E402
from rm_theory.figures.common import save  # noqa: E402
from rm_theory.figures.ibn import draw_ibn  # noqa: E402

__all__ = [
    "ai_labels",
    "analyse_data",
    "best_of_n",
    "design",
    "draw_figures",
    "draw_ibn",
    "figure_specs",
    "finetune_rm",
    "ibn_scaling",
    "ideal_learner",
    "multi_dim",
    "real_data",
    "real_design",
    "real_theory",
    "safe_rlhf",
    "save",
    "train_rm",
    "win_rates",
]
