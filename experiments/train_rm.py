"""Reward and cost models trained on chain vs tree data; theory against practice. See conf/experiment/train_rm*.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory import train_rm_study
from rm_theory.config import register
from rm_theory.results import run_entry

register("train_rm")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_rm")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, train_rm_study.run)


if __name__ == "__main__":
    main()
