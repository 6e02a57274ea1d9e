"""Best-of-N with chain and tree reward models (paper §5). See conf/experiment/best_of_n.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import best_of_n as study

register("best_of_n")


@hydra.main(version_base="1.3", config_path="../conf", config_name="best_of_n")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
