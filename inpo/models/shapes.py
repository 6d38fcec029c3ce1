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
    """UNet (SD3: transformer), text encoders (SD3's T5 unless ``model.sd3_t5`` leaves it out) and VAE
    (when the folder has ``vae/``) built from ``config.json`` files."""
    import torch
    import transformers
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL

    from .families import text_encoder_classes
    from .loading import _has_subfolder, family_spec

    base, revision = model_cfg.base, model_cfg.revision or "main"
    spec = family_spec(model_cfg.family)
    cls = spec.denoiser_class
    frozen: list[Any] = []
    for folder, encoder_cls, _ in text_encoder_classes(spec):
        if folder == "text_encoder_3" and model_cfg.sd3_t5 != "load":
            continue
        model_cls = getattr(transformers, encoder_cls)
        config = model_cls.config_class.from_pretrained(base, subfolder=folder, revision=revision)
        with torch.device("meta"):  # (not init_empty_weights: it unties T5's embedding from `shared`)
            frozen.append(model_cls(config))
    with init_empty_weights():
        unet = cls.from_config(cls.load_config(base, subfolder=spec.denoiser, revision=revision))
        if _has_subfolder(base, "vae", revision):
            frozen.append(AutoencoderKL.from_config(AutoencoderKL.load_config(base, subfolder="vae", revision=revision)))
    return ModelShapes(unet, _count(unet), sum(_count(m) for m in frozen))
