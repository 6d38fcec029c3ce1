"""``inpo config``: print the validated config after overrides."""

from __future__ import annotations

import yaml

from ..config import Config, to_dict


def preflight(cfg: Config) -> None:
    """Names a config can only be checked against registries: the world, scorers, prompt sets."""
    from evaluation.prompts import check_prompt_sets
    from evaluation.scorers.base import check_scorer_names

    from ..worlds import get_world

    get_world(cfg)
    check_scorer_names(cfg.eval.scorers)
    check_prompt_sets(cfg.eval)


def run(cfg: Config) -> None:
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
