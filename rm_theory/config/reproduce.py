"""Schema of the one-command reproduction (`python -m experiments.reproduce`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.common.validate import spec
from rm_theory.config.common import RunSchema
from rm_theory.registry import STUDIES
from rm_theory.registry import steps as registered_steps


@dataclasses.dataclass
class ClaimSchema:
    """One claim of the paper, checked against a step's summary.json: the paper says `key` is above
    (direction "greater") or below ("less") `line`; `paper` is the paper's wording and number."""

    key: str = ""
    paper: str = ""
    line: float = spec(0.0, unbounded="a value of the claim's summary key")
    direction: str = spec("greater", choices=("greater", "less"))
    # summary keys that say how many units the interval is over; the first counts the interval's
    # units (independent replicates), the others what each unit rests on (held-out pairs, ...)
    size: list[str] = dataclasses.field(default_factory=lambda: ["seeds"])
    # what one unit of the interval is (a summary key `<key>_units` overrides it), and how the
    # interval is drawn: Student t over the units (`common.stats.mean_ci`) or a bootstrap
    units: str = "seeds (worlds)"
    method: str = spec("t", choices=("t", "bootstrap"))


@dataclasses.dataclass
class StepSchema:
    """One figure/table: an entry point, its preset, and the overrides of each scale."""

    entry: str = spec("ibn_scaling", choices=tuple(STUDIES))  # a study of the registry
    experiment: str | None = None
    title: str = ""
    claim: str = ""  # what the paper reports, shown beside our number in the report
    quick: list[str] = dataclasses.field(default_factory=list)
    paper: list[str] = dataclasses.field(default_factory=list)
    needs_data: bool = False  # reads ../shared/data (skipped, and said so, when it is absent)
    claims: list[ClaimSchema] = dataclasses.field(default_factory=list)  # the report's opening table


def default_steps() -> dict[str, StepSchema]:
    """The reproduction's steps, from the registry of studies (`rm_theory.registry`), in its order."""
    return {
        name: StepSchema(
            entry=study.name,
            experiment=step.preset,
            title=step.title,
            claim=step.claim,
            quick=list(step.quick),
            paper=list(step.paper),
            needs_data=step.needs_data,
            claims=[ClaimSchema(**c) for c in step.claims],
        )
        for name, (study, step) in registered_steps().items()
    }


@dataclasses.dataclass
class ReproduceSchema(RunSchema):
    scale: str = spec("quick", choices=("quick", "paper"))
    only: list[str] = spec(default_factory=list, keys_of="steps")  # run a subset of the steps
    data_dir: str = "../shared/data"
    step_timeout_s: int = spec(3600, ge=1)
    # Steps run at once, each in its own process. Much of a quick step is single-threaded (XLA
    # compiles, Python, plotting), so two at a time on two cores nearly halves the wall time; the
    # numbers do not depend on it (each step is its own process with its own seeds).
    jobs: int = spec(2, ge=1)
    # Steps not on real data start in this order (then the unlisted ones, in the config's order):
    # longest first, so that the lanes finish together instead of one long step running alone
    # at the end. The report keeps the config's order either way.
    start_order: list[str] = spec(default_factory=list, keys_of="steps")
    # every step of the registry; a step's fields can be overridden (`steps.train_rm.quick=[...]`)
    steps: dict[str, StepSchema] = dataclasses.field(default_factory=default_steps)

    # Each step is fingerprinted on its own (its command and config files; a changed one is rerun):
    # which steps run now and their definitions do not make the reproduction folder another run's.
    NOT_FINGERPRINTED: ClassVar[tuple[str, ...]] = ("step_timeout_s", "only", "steps", "jobs", "start_order")
    RESUME_STATE: ClassVar[tuple[str, ...]] = ("runs",)  # the steps' folders: finished steps are skipped
    SMOKE: ClassVar[dict[str, Any]] = {"step_timeout_s": 600}
