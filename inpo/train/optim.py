"""Optimizer and learning-rate schedule from ``train:`` (spec §4: AdamW for SD1.5, Adafactor for SDXL,
linear warm-up then constant; cosine as an option)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ..config.sections import TrainConfig


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: TrainConfig, learning_rate: float | None = None
) -> torch.optim.Optimizer:
    lr = cfg.learning_rate if learning_rate is None else learning_rate
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: check model.lora and the policy's requires_grad flags")
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(
            params,
            lr=lr,
            betas=(cfg.adam_beta1, cfg.adam_beta2),
            eps=cfg.adam_eps,
            weight_decay=cfg.weight_decay,
        )
    from transformers.optimization import Adafactor

    return Adafactor(
        params,
        lr=lr,
        relative_step=False,
        scale_parameter=False,
        warmup_init=False,
        weight_decay=cfg.weight_decay,
    )


def lr_factor(step: int, cfg: TrainConfig, max_steps: int) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based).

    Linear warm-up over ``warmup_steps`` (step s gets (s+1)/warmup), then constant or cosine to 0.
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return 1.0
    span = max(1, max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, peak: float, factor: float) -> float:
    lr = peak * factor
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
