"""Optimizer and learning-rate schedule from ``train:`` (spec §4: AdamW for SD1.5, Adafactor for SDXL,
linear warm-up then constant; cosine or linear decay as options).

The schedule is diffusers' (``diffusers.optimization.get_scheduler``, as the paper's release and
diffusers' training scripts use it): warm-up step s gets s / warmup_steps of the peak, so the first
update runs at learning rate 0. The loop sets each step's rate from the schedule's own
multiplier, so a resumed run needs no scheduler state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

import torch

from ..config.sections import TrainConfig


def check_optimizer(cfg: TrainConfig) -> None:
    """``train.optimizer`` can be built here (adamw8bit needs bitsandbytes), before any model loads."""
    import importlib.util

    from ..errors import InputError

    if cfg.optimizer == "adamw8bit" and importlib.util.find_spec("bitsandbytes") is None:
        raise InputError(
            "train.optimizer: 'adamw8bit' needs bitsandbytes, which is not installed "
            "(pip install 'inpo[gpu]'; or use adamw / adafactor)"
        )


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
    if cfg.optimizer == "adamw8bit":  # 8-bit moments (bitsandbytes, as kohya-ss and diffusers' scripts offer)
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(  # type: ignore[no-any-return]
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


# train.lr_schedule → the name diffusers' get_scheduler knows (constant keeps its warm-up)
DIFFUSERS_SCHEDULES = {"constant": "constant_with_warmup", "cosine": "cosine", "linear": "linear"}


@lru_cache(maxsize=8)
def _multiplier(schedule: str, warmup_steps: int, max_steps: int) -> Callable[[int], float]:
    from diffusers.optimization import get_scheduler

    probe = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lambda_lr = get_scheduler(
        DIFFUSERS_SCHEDULES[schedule], probe, num_warmup_steps=warmup_steps, num_training_steps=max_steps
    )
    return lambda_lr.lr_lambdas[0]  # type: ignore[no-any-return]


def lr_factor(step: int, cfg: TrainConfig, max_steps: int) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based): diffusers'
    ``get_scheduler(DIFFUSERS_SCHEDULES[cfg.lr_schedule], ...)`` at that step."""
    return float(_multiplier(cfg.lr_schedule, cfg.warmup_steps, max_steps)(step))


def set_learning_rate(optimizer: torch.optim.Optimizer, peak: float, factor: float) -> float:
    lr = peak * factor
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
