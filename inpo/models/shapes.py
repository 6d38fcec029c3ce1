"""Parameter counts of a base model from its config files alone (no weights read), on the meta
device: what ``inpo check --shapes-only`` estimates memory from, for models too large to download
just to size a run (``configs/models/`` ships such config folders)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inpo.config.sections import ModelConfig


@dataclass(frozen=True)
class ModelShapes:
    unet: Any  # the UNet on the meta device (a LoRA adapter can be added to count its parameters)
    unet_params: int
    frozen_params: int  # text encoder(s) and VAE


def _count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def model_shapes(model_cfg: ModelConfig) -> ModelShapes:
    """UNet, text encoder(s) and VAE (when the folder has ``vae/``) built from ``config.json`` files."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from .loading import _has_subfolder, family_spec

    base, revision = model_cfg.base, model_cfg.revision or "main"
    spec = family_spec(model_cfg.family)
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(base, subfolder="unet", revision=revision)
        )
        frozen: list[Any] = [CLIPTextModel(CLIPTextConfig.from_pretrained(base, subfolder="text_encoder", revision=revision))]
        if spec.text_encoders == 2:
            config = CLIPTextConfig.from_pretrained(base, subfolder="text_encoder_2", revision=revision)
            frozen.append(CLIPTextModelWithProjection(config))
        if _has_subfolder(base, "vae", revision):
            frozen.append(AutoencoderKL.from_config(AutoencoderKL.load_config(base, subfolder="vae", revision=revision)))
    return ModelShapes(unet, _count(unet), sum(_count(m) for m in frozen))
