"""The one interface every scorer implements, and the registry that builds them by name.

    scorer = build_scorer("pickscore", cfg.eval, device="cuda")
    values = scorer.score(images, prompts)  # float32 [N], one per image, on the CPU
    scorer.info()                            # weights, backbone, version, preprocessing: for reports

Scorers are registered as ``"module:Class"`` strings so that transformers / open_clip (and the toy
world's oracle) are imported only when asked for. A registered class builds itself with
``Class.from_config(eval_cfg, device=..., dtype=...)``, or with ``Class()`` when it has no
``from_config`` (the toy oracle); anything with ``name``, ``score`` and ``info`` is accepted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from evaluation.imports import import_object

if TYPE_CHECKING:
    from PIL import Image

    from inpo.config.sections import EvalConfig

SCORERS: dict[str, str] = {
    "aesthetic": "evaluation.scorers.aesthetic:AestheticScorer",
    "pickscore": "evaluation.scorers.pickscore:PickScoreScorer",
    "hps": "evaluation.scorers.open_clip_scorers:HpsScorer",
    "clip": "evaluation.scorers.open_clip_scorers:ClipScorer",
    "oracle": "inpo.toyworld.oracle:OracleScorer",
    "oracle_strict": "inpo.toyworld.oracle:StrictOracleScorer",
}

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


class Scorer(ABC):
    """Scores images against their prompts: ``score(images, prompts)`` → float32 ``[N]``.

    Subclasses implement :meth:`_score_batch` (called under ``torch.no_grad`` on at most
    ``batch_size`` images) and :meth:`info`; this class does batching, input checks and the
    float32-on-CPU output contract.
    """

    name: str = "scorer"

    def __init__(
        self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, batch_size: int = 16
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = batch_size

    @classmethod
    def from_config(
        cls, eval_cfg: EvalConfig, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> Scorer:
        """Build the scorer from its ``eval.<name>`` settings."""
        raise NotImplementedError(f"{cls.__name__} does not implement from_config")

    @abstractmethod
    def _score_batch(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        """Scores of one batch: ``[B]`` tensor (any float dtype/device)."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """What was loaded (weights, backbone, version, preprocessing), JSON-serialisable."""

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        """One score per image: float32 ``[N]`` on the CPU. ``prompts[i]`` belongs to ``images[i]``."""
        if len(images) != len(prompts):
            raise ValueError(f"{self.name}: got {len(images)} images but {len(prompts)} prompts")
        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                stop = start + self.batch_size
                batch = self._score_batch(images[start:stop], prompts[start:stop])
                out.append(batch.detach().float().cpu().reshape(-1))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float32)


def check_scorer_names(names: Sequence[str], key: str = "eval.scorers") -> None:
    """Every name is a registered scorer; an :class:`inpo.errors.InputError` naming ``key[i]`` otherwise."""
    from inpo.errors import InputError

    for i, name in enumerate(names):
        if name not in SCORERS:
            raise InputError(
                f"{key}[{i}]: unknown scorer {name!r}; expected one of {', '.join(sorted(SCORERS))}"
            )


def build_scorer(
    name: str,
    eval_cfg: EvalConfig,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
) -> Scorer:
    """Build the scorer registered as ``name`` from ``eval_cfg``; dtype defaults to ``eval.score_dtype``."""
    if name not in SCORERS:
        raise KeyError(f"unknown scorer {name!r}; valid scorers: {', '.join(sorted(SCORERS))}")
    cls = import_object(SCORERS[name])
    dtype = dtype if dtype is not None else eval_cfg.score_dtype
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    scorer = cls.from_config(eval_cfg, device=device, dtype=dtype) if hasattr(cls, "from_config") else cls()
    missing = [attr for attr in ("name", "score", "info") if not hasattr(scorer, attr)]
    if missing:
        raise TypeError(
            f"scorer {name!r} ({SCORERS[name]}) lacks {', '.join(missing)} of the Scorer interface"
        )
    return scorer
