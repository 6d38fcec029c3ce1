"""The embedded toy world (:mod:`inpo.toyworld`) as a world plug."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Guard, World

if TYPE_CHECKING:
    from PIL import Image

    from ..config import Config

VALIDATION_PROMPTS = 8
FOLLOWS_FORMULA = (
    "1 if the classified colour, shape and background all match the prompt (inpo.toyworld.metrics)"
)


def _follows(images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
    from ..toyworld.metrics import prompt_following

    return [prompt_following([img], [p])["accuracy"] for img, p in zip(images, prompts)]


def _diversity(images: Sequence[Image.Image], prompts: Sequence[str]) -> float:
    from ..toyworld.metrics import diversity

    return diversity(images, prompts)


class ToyWorld(World):
    """Coloured shapes, an exact oracle, a shipped tiny base (``toy.base.out``); pairs are the base's
    own samples judged by the oracle (``inpo world pairs``)."""

    name = "toy"

    def makes_pairs(self) -> bool:
        return True

    def base_dir(self, cfg: Config) -> str:
        return cfg.toy.base.out

    def make_pairs(self, cfg: Config, progress: bool = True) -> dict[str, Any]:
        from ..layout import world_pairs_dir
        from ..toyworld.pairs import generate_pairs

        return generate_pairs(cfg, self.base_dir(cfg), world_pairs_dir(cfg), progress=progress)

    def make_round_pairs(
        self, cfg: Config, policy: Any, round_index: int, pairs_per_prompt: int, out: str | Path, progress: bool = True
    ) -> dict[str, Any]:
        from ..toyworld.online_pairs import write_round_pairs

        return write_round_pairs(cfg, policy, round_index, pairs_per_prompt, out, progress)

    def round_policy(self, cfg: Config) -> Any:
        from ..models import load_components

        policy = load_components(cfg.model)  # CPU fp32, as the world's offline pairs: same pixels anywhere
        policy.unet.eval()
        return policy

    def round_labellers(self, cfg: Config) -> list[str]:
        return ["oracle"]  # inpo.toyworld.online_pairs: the world's own labeller, as for its offline pairs

    def offline_pairs_per_prompt(self, cfg: Config) -> int:
        return cfg.toy.pairs.pairs_per_prompt

    def train_base(self, cfg: Config, progress: bool = True) -> dict[str, Any]:
        from ..toyworld.base import train_base

        return train_base(cfg, self.base_dir(cfg), progress=progress)

    def pair_figure(self, cfg: Config, path: str | Path, rows: int = 16) -> Path:
        from ..layout import world_pairs_dir
        from ..toyworld.figures import write_pair_grid

        return write_pair_grid(world_pairs_dir(cfg), path, rows)

    def base_figure(self, cfg: Config, path: str | Path) -> Path:
        from ..toyworld.figures import write_sample_grid

        return write_sample_grid(cfg, self.base_dir(cfg), path)

    def validation_prompts(self, cfg: Config) -> list[str]:
        from ..toyworld.prompts import heldout_prompts

        return heldout_prompts(cfg)[:VALIDATION_PROMPTS]

    def validation_scores(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict[str, float]:
        from ..toyworld.metrics import prompt_following
        from ..toyworld.oracle import OracleScorer

        scores = OracleScorer().score(list(images), list(prompts))
        return {"oracle_mean": float(scores.mean()), **prompt_following(list(images), list(prompts))}

    def guard(self) -> Guard:
        return Guard("toy", "prompt_following", _follows, FOLLOWS_FORMULA, "diversity", _diversity)
