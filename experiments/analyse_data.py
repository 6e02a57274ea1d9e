"""The IBN report of your own preference data: components, inference distances of held-out pairs,
F(M) and its regime, the least determined pairs and the next comparisons to collect.

    python -m experiments.analyse_data data.path=pairs.jsonl data.format=jsonl
"""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import analyse_data as study

register("analyse_data")


@hydra.main(version_base="1.3", config_path="../conf", config_name="analyse_data")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
