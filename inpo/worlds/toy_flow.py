"""World ``toy-flow``: the toy world (scenes, oracle, prompts, pairs) with a flow-matching base.

The same recipe as world ``toy``'s base with the objective switched to rectified flow (velocity
regression, a FlowMatchEulerDiscreteScheduler with ``toy.flow.shift``), written to
``toy.flow.base_out``; pairs are its own samples (flow Euler) judged by the oracle. Run it with
``inpo params --from configs/toy-flow.overrides`` (the world, eta 0, the flow sampler)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .toy import ToyWorld

if TYPE_CHECKING:
    from ..config import Config


class ToyFlowWorld(ToyWorld):
    name = "toy-flow"

    def base_dir(self, cfg: Config) -> str:
        return cfg.toy.flow.base_out

    def train_base(self, cfg: Config, progress: bool = True) -> dict[str, Any]:
        from ..toyworld.base import train_base

        return train_base(cfg, self.base_dir(cfg), progress=progress, flow_shift=cfg.toy.flow.shift)
