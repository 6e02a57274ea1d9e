"""`debug=smoke`: a run of seconds, the schema's `SMOKE` sizes as defaults that the command line's
overrides win over."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def override_keys(overrides: list[str]) -> list[str]:
    """Config keys set on the command line (`key=value`, `+key=`, `++key=`, `~key`); not groups."""
    keys = []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if key and key not in ("debug", "experiment") and not key.startswith("hydra."):
            keys.append(key)
    return keys


def apply_smoke(cfg: DictConfig, schema: type, explicit: list[str] = ()) -> DictConfig:
    """Shrinks a config to a run of seconds: the schema's `SMOKE` dotted-key overrides, as defaults.

    A key given on the command line (`explicit`, or a key above or below it) keeps the user's value.
    """

    def overridden(key: str) -> bool:
        return any(key == o or key.startswith(o + ".") or o.startswith(key + ".") for o in explicit)

    for key, value in getattr(schema, "SMOKE", {}).items():
        if not overridden(key):
            OmegaConf.update(cfg, key, value, merge=False)
    return cfg
