"""Preference data built without annotators (Safer-Instruct, AI judges) against human data at equal cost.

See conf/experiment/ai_labels*.yaml.
"""

import hydra
from omegaconf import DictConfig

from rm_theory.config import register
from rm_theory.runs.folder import run_entry
from rm_theory.studies import ai_labels as study

register("ai_labels")


@hydra.main(version_base="1.3", config_path="../conf", config_name="ai_labels")
def main(cfg: DictConfig) -> None:
    run_entry(cfg, study.run)


if __name__ == "__main__":
    main()
