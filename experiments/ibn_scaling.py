"""Chain vs tree scaling of inference distance (paper Theorem 4.5 / Table 2). See conf/experiment/ibn_scaling.yaml."""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import ibn_scaling as study

register("ibn_scaling")


@hydra.main(version_base="1.3", config_path="../conf", config_name="ibn_scaling")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
