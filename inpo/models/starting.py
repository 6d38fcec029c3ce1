"""Which model preference training starts from: the base, or the SFT stage's output in its place."""

from __future__ import annotations

import dataclasses

from .. import layout
from ..config import Config
from ..config.sections import ModelConfig


def starting_model(cfg: Config) -> ModelConfig:
    """``model`` as configured, or with the SFT stage's UNet (``sft.enabled``; an SFT LoRA adapter is
    merged at load). Policy and reference both start here; ``generate`` puts a method's LoRA on it."""
    if not cfg.sft.enabled:
        return cfg.model
    sft_unet = str(layout.sft_weights(cfg))
    if cfg.model.lora.enabled:
        return dataclasses.replace(cfg.model, unet_lora=sft_unet)
    return dataclasses.replace(cfg.model, unet=sft_unet)
