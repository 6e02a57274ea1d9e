"""Multi-dimensional preferences: dual against single labels at equal cost, the IBN per dimension, Safe RLHF per
harm category. See conf/experiment/multi_dim*.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs.folder import run_entry
from rm_theory.studies import multi_dim as study

register("multi_dim")


@hydra.main(version_base="1.3", config_path="../conf", config_name="multi_dim")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
