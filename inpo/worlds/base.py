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

    def make_round_pairs(
        self, cfg: Config, policy: Any, round_index: int, pairs_per_prompt: int, out: str | Path, progress: bool = True
    ) -> dict[str, Any]:
        """Online rounds: ``policy``'s samples for the round's prompts, labelled by the world's labeller,
        written into ``out`` (Pick-a-Pic v2's shape, with ``soft_label_0``); its metadata. Given data:
        ``online.prompts`` judged by the ``relabel`` scorers (:mod:`evaluation.round_pairs`)."""
        from evaluation.round_pairs import write_scored_round_pairs

        return write_scored_round_pairs(cfg, policy, round_index, pairs_per_prompt, out, progress)

    def round_policy(self, cfg: Config) -> Any:
        """The policy that samples a round's pairs (``cfg.model``, eval mode): on the GPU when there is
        one, in the evaluation sampler's ``sample.dtype``."""
        import torch

        from evaluation.scorers.base import DTYPES

        from ..models import load_components

        dtype = DTYPES[cfg.sample.dtype]
        device = "cuda" if torch.cuda.is_available() else "cpu"
        policy = load_components(cfg.model, device=device, dtype=dtype, unet_dtype=dtype)
        policy.unet.requires_grad_(False)
        policy.unet.eval()
        return policy

    def round_labellers(self, cfg: Config) -> list[str]:
        """The scorers that label a round's pairs (each also judges the round's evaluation)."""
        from evaluation.relabel import judge_weights

        return list(judge_weights(cfg))

    def offline_pairs_per_prompt(self, cfg: Config) -> int:
        """How many pairs per prompt the world's offline data holds (rounds share them out); 1 when unknown."""
        return 1

    def check_online(self, cfg: Config) -> None:
        """Refuse, before any work, online settings this world cannot run (raise InputError naming the key)."""
        from evaluation.prompts import check_prompt_set

        from ..errors import InputError

        o = cfg.online
        if o.prompts is None:
            raise InputError(
                f"online.prompts: world {self.name!r} has no prompts of its own to sample; name a prompt set "
                "(parti, hpdv2) or a one-prompt-per-line .txt file"
            )
        if o.prompts in cfg.eval.prompt_sets:
            raise InputError(
                f"online.prompts: {o.prompts!r} is also an evaluation prompt set (eval.prompt_sets); the rounds "
                "would train on the prompts they are judged on"
            )
        check_prompt_set(o.prompts, "online.prompts")
        from evaluation.relabel import judge_weights

        from ..methods import METHODS

        untempered = [n for n in judge_weights(cfg) if n not in cfg.relabel.tau]
        if o.method in METHODS and "soft_label_w" in METHODS[o.method].pair_fields and untempered:
            raise InputError(
                f"relabel.tau: online.method {o.method!r} trains on smoothed labels, which need a temperature "
                f"for each labeller; none for {', '.join(untempered)}"
            )
        if o.guard_scorer.startswith("oracle"):
            raise InputError(
                f"online.guard_scorer: {o.guard_scorer!r} judges the toy worlds' images only; world {self.name!r} "
                "needs a learned scorer (aesthetic, pickscore, hps, clip)"
            )

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
