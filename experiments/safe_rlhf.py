"""Safe RLHF: Lagrangian vs. fixed penalties. See conf/experiment/safe_rlhf.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import safe_rlhf as study

register("safe_rlhf")


@hydra.main(version_base="1.3", config_path="../conf", config_name="safe_rlhf")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
