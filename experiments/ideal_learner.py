"""The exact Bayesian reward learner and the neural ones' gap to it. See conf/experiment/ideal_learner.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import ideal_learner as study

register("ideal_learner")


@hydra.main(version_base="1.3", config_path="../conf", config_name="ideal_learner")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
