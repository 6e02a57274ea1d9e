"""Reward and cost models trained on chain vs tree data; theory against practice. See conf/experiment/train_rm*.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import train_rm as study

register("train_rm")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_rm")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
