"""Reward/cost heads on frozen encoder features of real preference data; the IBN of real data and
its F(M) regime; chain-like vs tree-like comparisons on real response groups.
See conf/experiment/real_*.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import real_data as study

register("real_data")


@hydra.main(version_base="1.3", config_path="../conf", config_name="real_data")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
