"""Which comparisons to collect: IBN-guided design vs chain, tree, disagreement and random pairs.
See conf/experiment/design.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import design as study

register("design")


@hydra.main(version_base="1.3", config_path="../conf", config_name="design")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
