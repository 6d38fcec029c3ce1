"""What one training run is (:class:`TrainRun`), how a stage builds it from the config
(:func:`training_run`), and the observer interface the loop reports to (:class:`TrainObserver`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..config.sections import DataConfig, ModelConfig, TrainConfig
from ..methods import Method, build_method

ValidationHook = Callable[[int, torch.nn.Module, Any, Path], dict[str, float]]


@dataclass
class TrainRun:
    """Everything the loop needs and nothing else: the method (built from its section), the data, the
    starting model, the optimisation settings of this run (``train.max_steps`` / ``learning_rate`` as
    the stage sets them) and where it writes."""

    method: Method
    index_path: Path  # the pair index written by `inpo prepare`
    out_dir: Path  # final weights (out_dir/unet) and metrics.jsonl
    ckpt_root: Path  # resumable checkpoints (outside DVC's cache), one folder per run identity in it
    model: ModelConfig  # the base (or the SFT output as both policy and reference)
    train: TrainConfig
    data: DataConfig
    cache_root: Path | None = None  # <paths.checkpoints>/cache: the embedding and method caches
    validate: ValidationHook | None = None
    _ckpt_dir: Path | None = dataclasses.field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def ckpt_dir(self) -> Path:
        """``ckpt_root/<fingerprint>``: this run's checkpoints, keyed by config, pair data, starting
        model and code (:mod:`inpo.train.identity`; computed once, on first use)."""
        if self._ckpt_dir is None:
            from .identity import open_checkpoint_dir

            self._ckpt_dir = open_checkpoint_dir(self)
        return self._ckpt_dir


def cache_root(cfg: Config) -> Path:
    """``<paths.checkpoints>/cache``: regenerable caches shared by stages and resumed runs."""
    from .. import layout

    return layout.cache_root(cfg)


def training_run(
    cfg: Config,
    method: str,
    *,
    index_path: Path,
    out_dir: Path,
    ckpt_root: Path,
    model: ModelConfig | None = None,
    max_steps: int | None = None,
    learning_rate: float | None = None,
    validate: ValidationHook | None = None,
) -> TrainRun:
    """The run of ``method`` (a name in :data:`inpo.methods.METHODS`) under ``cfg``; ``max_steps`` and
    ``learning_rate`` override ``cfg.train``'s (the SFT stage has its own)."""
    train = dataclasses.replace(
        cfg.train,
        max_steps=cfg.train.max_steps if max_steps is None else max_steps,
        learning_rate=cfg.train.learning_rate if learning_rate is None else learning_rate,
    )
    return TrainRun(
        method=build_method(method, cfg.method),
        index_path=Path(index_path),
        out_dir=Path(out_dir),
        ckpt_root=Path(ckpt_root),
        model=cfg.model if model is None else model,
        train=train,
        data=cfg.data,
        cache_root=cache_root(cfg),
        validate=validate,
    )


class TrainObserver:
    """Measurement hooks of the loop (benchmarks, progress UIs). Every method is optional; the loop
    calls them on the main process."""

    def on_start(self, run: TrainRun, unets: list[torch.nn.Module]) -> None:
        """Before the first step; ``unets``: the policy's UNet and the frozen reference's (if distinct)."""

    def on_step_start(self, step: int) -> None:
        """Before the first micro-batch of optimizer step ``step``."""

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        """After the update of ``step`` (the metrics logged for it)."""

    def on_end(self, result: Any) -> None:
        """After the final weights are written (a :class:`inpo.train.loop.TrainResult`)."""
