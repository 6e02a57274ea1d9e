"""Win rates of PPO/DPO policies from chain vs tree data (paper §5).

See conf/experiment/win_rate_table.yaml and the other win_rates presets.
"""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs import run_entry
from rm_theory.studies import win_rates as study

register("win_rates")


@hydra.main(version_base="1.3", config_path="../conf", config_name="win_rates")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
