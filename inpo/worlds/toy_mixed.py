"""World ``toy-mixed`` (:mod:`inpo.toyworld.mixed`) as a world plug: world ``toy``'s scenes, oracle and
guards, with a weak base (``toy.mixed.base_out``) and pairs from several generators with noisy labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .toy import ToyWorld

if TYPE_CHECKING:
    from ..config import Config


class ToyMixedWorld(ToyWorld):
    """Coloured shapes judged by the exact oracle; the base to improve is the weak one (the shipped
    recipe on flawed renders); each pair mixes the weak base, world toy's base and imperfect renders,
    labelled by a Bradley–Terry draw with ties (``inpo world pairs``)."""

    name = "toy-mixed"

    def base_dir(self, cfg: Config) -> str:
        return cfg.toy.mixed.base_out

    def make_pairs(self, cfg: Config, progress: bool = True) -> dict[str, Any]:
        from ..layout import world_pairs_dir
        from ..toyworld.mixed import generate_mixed_pairs

        return generate_mixed_pairs(cfg, world_pairs_dir(cfg), progress=progress)

    def train_base(self, cfg: Config, progress: bool = True) -> dict[str, Any]:
        from ..toyworld.base import train_base

        return train_base(cfg, cfg.toy.mixed.base_out, progress=progress, flawed=True)
