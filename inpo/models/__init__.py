"""Model components: loading (the only ``from_pretrained`` calls), text conditioning, the UNet call,
the VAE, the reference model and weight saving. See each module's docstring."""

from __future__ import annotations

from ..io import atomic_directory
from .conditioning import Conditioning, constant_time_ids, encode_prompts, sdxl_time_ids, unet_eps
from .loading import (
    FAMILIES,
    Components,
    FamilySpec,
    family_spec,
    load_components,
    load_denoiser,
    load_for_sampling,
)
from .reference import (
    ReferenceModel,
    adapter_disabled,
    add_lora_adapter,
    build_reference,
    has_lora_adapter,
    lora_parameters,
)
from .saving import load_lora_and_merge, load_unet_weights, merge_lora, save_unet_weights
from .vae import decode_latents, encode_images

__all__ = [
    "FAMILIES",
    "Components",
    "Conditioning",
    "FamilySpec",
    "ReferenceModel",
    "adapter_disabled",
    "add_lora_adapter",
    "atomic_directory",
    "build_reference",
    "constant_time_ids",
    "decode_latents",
    "encode_images",
    "encode_prompts",
    "family_spec",
    "has_lora_adapter",
    "load_components",
    "load_denoiser",
    "load_for_sampling",
    "load_lora_and_merge",
    "load_unet_weights",
    "lora_parameters",
    "merge_lora",
    "save_unet_weights",
    "sdxl_time_ids",
    "unet_eps",
]
