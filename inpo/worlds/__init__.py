"""Worlds: where the preference data comes from and what judges it, selected by ``world:`` in params.

A world (:class:`inpo.worlds.base.World`) says how its pairs are made (if it makes them), its
validation prompts, its exact scorer and guard metrics (if any) and its base-model recipe (if any).
The training loop, generation, scoring and the flows ask the configured world; none of them names one.

    world = get_world(cfg)          # WORLDS[cfg.world]
    world.validation_prompts(cfg)

Adding a world: one module with a :class:`World` subclass, one line in :data:`WORLDS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import World, WorldError
from .pickapic import PickapicWorld
from .toy import ToyWorld
from .toy_flow import ToyFlowWorld
from .toy_mixed import ToyMixedWorld

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["WORLDS", "World", "WorldError", "get_world"]

WORLDS: dict[str, World] = {
    "toy": ToyWorld(),
    "toy-mixed": ToyMixedWorld(),
    "toy-flow": ToyFlowWorld(),
    "pickapic": PickapicWorld(),
}


def get_world(cfg: Config) -> World:
    """The world ``cfg.world`` names; an unknown name is a config error that lists the valid ones.

    (The config does not check the name itself: importing the worlds would make every stage depend
    on every world's code.)"""
    from ..config import ConfigError

    if cfg.world not in WORLDS:
        raise ConfigError(f"world: {cfg.world!r} is not a world; expected one of {', '.join(WORLDS)}")
    return WORLDS[cfg.world]
