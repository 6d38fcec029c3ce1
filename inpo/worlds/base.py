"""The world interface: everything the pipeline needs to know about where its data comes from."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from ..config import Config


class WorldError(RuntimeError):
    """The configured world cannot do what was asked (e.g. make pairs in a world of given data)."""


@dataclass(frozen=True)
class Guard:
    """Guard metrics that training never optimises, for one evaluation prompt set.

    ``per_image(images, prompts)`` → [N] floats (e.g. 1 when the image follows its prompt);
    ``spread(images, prompts)`` → one float over a model's images (e.g. diversity across seeds)."""

    prompt_set: str  # the evaluation prompt set the guard can read
    metric: str  # the per-image metric's name in the score table
    per_image: Callable[[Sequence[Image.Image], Sequence[str]], list[float]]
    formula: str  # what the per-image metric is, for the scorers' info
    spread_name: str
    spread: Callable[[Sequence[Image.Image], Sequence[str]], float]


class World:
    """A world. The defaults describe a world of given data with no exact judge (real data)."""

    name: str = ""

    def makes_pairs(self) -> bool:
        return False

    def make_pairs(self, cfg: Config, progress: bool = True) -> dict[str, Any]:
        raise WorldError(
            f"world {self.name!r} makes no pairs: its data is given; point data.source at it "
            "(and run `dvc repro report`, which skips the world_pairs stage)"
        )

    def round_labellers(self, cfg: Config) -> list[str]:
        """The world's own labeller for online rounds (scorer names; each also judges the round's
        evaluation), or [] (the default): rounds are labelled by AI feedback, the ``relabel`` judges
        (:mod:`inpo.online.scored_pairs`)."""
        return []

    def make_round_pairs(
        self, cfg: Config, policy: Any, round_index: int, pairs_per_prompt: int, out: str | Path, progress: bool = True
    ) -> dict[str, Any]:
        """Online rounds in a world with its own labeller: ``policy``'s samples for the world's training
        prompts, labelled as its offline pairs were, written into ``out`` (Pick-a-Pic v2's shape, with
        ``soft_label_0``); its metadata."""
        raise WorldError(f"world {self.name!r} has no labeller of its own (its rounds use the relabel judges)")

    def round_policy(self, cfg: Config) -> Any:
        """The policy that samples a round's pairs (``cfg.model``, eval mode): on the GPU when there is
        one, in the evaluation sampler's ``sample.dtype``."""
        import torch

        from ..models import load_for_sampling

        device = "cuda" if torch.cuda.is_available() else "cpu"
        return load_for_sampling(cfg.model, device, getattr(torch, cfg.sample.dtype))

    def offline_pairs_per_prompt(self, cfg: Config) -> int:
        """How many pairs per prompt the world's offline data holds (rounds share them out); 1 when unknown."""
        return 1

    def pairs_planned(self, cfg: Config, root: str | Path = ".") -> bool:
        """True when ``data.source`` is this world's own pair maker's output (the flow runs world_pairs);
        relative paths are read from ``root`` (the workspace)."""
        from ..layout import world_pairs_dir

        root = Path(root)
        return (
            self.makes_pairs()
            and (root / cfg.data.source).resolve() == (root / world_pairs_dir(cfg)).resolve()
        )

    def base_dir(self, cfg: Config) -> str | None:
        """The world's own base model folder (what ``model.pretrained: null`` means), or None."""
        return None

    def train_base(self, cfg: Config, progress: bool = True) -> dict[str, Any]:
        raise WorldError(f"world {self.name!r} has no base-model recipe: its base is model.pretrained")

    def pair_figure(self, cfg: Config, path: str | Path, rows: int = 16) -> Path:
        """A PNG grid of the first ``rows`` pairs of the world's pairs with the judge's choices."""
        raise WorldError(f"world {self.name!r} has no pair figure")

    def base_figure(self, cfg: Config, path: str | Path) -> Path:
        """A PNG grid of the base's samples on the world's held-out prompts."""
        raise WorldError(f"world {self.name!r} has no base figure")

    def validation_prompts(self, cfg: Config) -> list[str]:
        """Fixed prompts of the validation grid during training."""
        raise NotImplementedError

    def validation_scores(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict[str, float]:
        """Quick exact scores of the validation images ({} when the world has no exact judge)."""
        return {}

    def guard(self) -> Guard | None:
        """Guard metrics for evaluation (None: none)."""
        return None

    def label(self, cfg: Config) -> str:
        """A short name of the world and its data, for experiment names and tags."""
        return self.name
