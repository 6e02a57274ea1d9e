"""Reward and cost models fine-tuned end to end from a pretrained transformer (all-MiniLM-L6-v2, or
any Hugging Face folder: model.path=...) on the real preference data sets, beside frozen-feature
heads and a bag-of-words baseline on the same splits. See conf/experiment/finetune_*.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import finetune_rm as study

register("finetune_rm")


@hydra.main(version_base="1.3", config_path="../conf", config_name="finetune_rm")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
