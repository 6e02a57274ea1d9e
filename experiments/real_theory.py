"""The IBN of a fine-tuned reward model against its errors and its ensemble's variance, on real
data sets with human labels. See conf/experiment/real_theory*.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import real_theory as study

register("real_theory")


@hydra.main(version_base="1.3", config_path="../conf", config_name="real_theory")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
