"""Safe RLHF: Lagrangian vs. fixed penalties. See conf/experiment/safe_rlhf.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory import downstream_study
from rm_theory.config import register
from rm_theory.results import run_entry

register("safe_rlhf")


@hydra.main(version_base="1.3", config_path="../conf", config_name="safe_rlhf")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, downstream_study.run_safe_rlhf)


if __name__ == "__main__":
    main()
