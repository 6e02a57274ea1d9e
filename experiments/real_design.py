"""Which real pairs to label: pool-based active labelling recipes (IBN A-optimal, random, ensemble
disagreement, Fisher D-optimal, same-prompt, one pair per prompt) on a fine-tuned model's representation,
on real human labels. See conf/experiment/real_design*.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import real_design as study

register("real_design")


@hydra.main(version_base="1.3", config_path="../conf", config_name="real_design")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
