"""The real-data world: Pick-a-Pic v2 (or any pair data of its shape) judged by learned scorers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import World

if TYPE_CHECKING:
    from ..config import Config

VALIDATION_PROMPTS = (
    "a photo of a cat",
    "a watercolor painting of a lighthouse",
    "a red apple on a wooden table",
    "an astronaut riding a horse",
)


class PickapicWorld(World):
    """Given pairs (``data.source``), a given base (``model.pretrained``), no exact judge: the
    evaluation scorers (``eval.scorers``: aesthetic, PickScore, HPS, CLIP) are the only judges."""

    name = "pickapic"

    def validation_prompts(self, cfg: Config) -> list[str]:
        return list(VALIDATION_PROMPTS)

    def label(self, cfg: Config) -> str:
        """The data source's last path part (e.g. ``pickapic_v2``)."""
        return Path(cfg.data.source.rstrip("/")).name or cfg.data.source
