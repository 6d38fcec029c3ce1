"""UNet weights on disk, in the layouts diffusers loads directly.

- full UNet: ``config.json`` + ``diffusion_pytorch_model.safetensors`` (``UNet2DConditionModel.from_pretrained``,
  or ``model.unet=<dir>``, or swapped into a pipeline);
- LoRA adapter: ``pytorch_lora_weights.safetensors`` with ``unet.``-prefixed keys (SD3:
  ``transformer.``) and the adapter's rank/alpha in the safetensors metadata
  (``pipeline.load_lora_weights(dir)``, or ``model.unet_lora=<dir>``).
Directories are written next to the target and renamed into place, so a killed write never leaves a
complete-looking folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..io import atomic_directory
from .reference import has_lora_adapter

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
UNET_WEIGHT_NAME = "diffusion_pytorch_model.safetensors"


def lora_prefix(unet: torch.nn.Module) -> str:
    """The component name diffusers prefixes a LoRA's keys with: ``transformer`` for SD3's
    transformer, ``unet`` for a UNet (what ``pipeline.load_lora_weights`` routes by)."""
    from diffusers import SD3Transformer2DModel

    return "transformer" if isinstance(unet, SD3Transformer2DModel) else "unet"


def _save_lora(unet: torch.nn.Module, out_dir: Path, layers: dict[str, Any], metadata: dict[str, Any]) -> None:
    from diffusers import StableDiffusion3Pipeline, StableDiffusionPipeline

    if lora_prefix(unet) == "transformer":
        StableDiffusion3Pipeline.save_lora_weights(
            out_dir,
            transformer_lora_layers=layers,
            transformer_lora_adapter_metadata=metadata,
            weight_name=LORA_WEIGHT_NAME,
        )
        return
    StableDiffusionPipeline.save_lora_weights(
        out_dir, unet_lora_layers=layers, unet_lora_adapter_metadata=metadata, weight_name=LORA_WEIGHT_NAME
    )


def save_unet_weights(unet: torch.nn.Module, out_dir: str | Path, lora: bool) -> Path:
    """Write the full UNet (``lora=False``) or its LoRA adapter (``lora=True``) to ``out_dir``.

    Pass the unwrapped module (``accelerator.unwrap_model``). A full save of a UNet that still
    carries an adapter is refused: ``merge_lora`` it first.
    """
    if lora:
        if not has_lora_adapter(unet):
            raise ValueError("save_unet_weights(lora=True): the UNet has no LoRA adapter")
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name="default"))
        metadata = unet.peft_config["default"].to_dict()  # type: ignore[index,union-attr]
        with atomic_directory(out_dir) as tmp:
            _save_lora(unet, Path(tmp), layers, metadata)
        return Path(out_dir)
    if has_lora_adapter(unet):
        raise ValueError(
            "save_unet_weights(lora=False): the UNet carries a LoRA adapter; merge_lora(unet) first"
        )
    with atomic_directory(out_dir) as tmp:
        unet.save_pretrained(tmp, safe_serialization=True)  # type: ignore[operator]
    return Path(out_dir)


def load_unet_weights(unet: torch.nn.Module, in_dir: str | Path, lora: bool) -> None:
    """Load weights written by :func:`save_unet_weights` into an existing UNet of the same layout
    (resume). ``lora=True``: into its existing ``default`` adapter; every key must match."""
    from safetensors.torch import load_file

    folder = Path(in_dir)
    if not lora:
        state = load_file(folder / UNET_WEIGHT_NAME)
        unet.load_state_dict(state, strict=True)
        return
    if not has_lora_adapter(unet):
        raise ValueError(
            "load_unet_weights(lora=True): add the adapter first (build_reference/add_lora_adapter)"
        )
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft import set_peft_model_state_dict

    raw = load_file(folder / LORA_WEIGHT_NAME)
    prefix = lora_prefix(unet) + "."
    state = convert_unet_state_dict_to_peft({k.removeprefix(prefix): v for k, v in raw.items()})
    result: Any = set_peft_model_state_dict(unet, state, adapter_name="default")
    if result.unexpected_keys:
        raise ValueError(
            f"{folder / LORA_WEIGHT_NAME}: keys that match no adapter weight: {result.unexpected_keys[:5]}"
        )
    expected = {n for n, _ in unet.named_parameters() if "lora_" in n}
    missing = [k for k in result.missing_keys if k in expected]
    if missing:
        raise ValueError(f"{folder / LORA_WEIGHT_NAME}: adapter weights missing from the file: {missing[:5]}")


def merge_lora(unet: torch.nn.Module) -> torch.nn.Module:
    """Fold the LoRA adapter into the base weights and remove it (in place; returns ``unet``).

    Afterwards the UNet is plain again, every parameter requires grad (as after loading), and its
    output equals the adapted UNet's up to fp rounding (e.g. an SFT LoRA before preference training).
    """
    if not has_lora_adapter(unet):
        raise ValueError("merge_lora: the UNet has no LoRA adapter")
    unet.fuse_lora()  # type: ignore[operator]
    unet.unload_lora()  # type: ignore[operator]
    unet.requires_grad_(True)
    return unet


def load_lora_and_merge(unet: torch.nn.Module, lora_dir: str) -> torch.nn.Module:
    """Load a LoRA adapter folder (``pytorch_lora_weights.safetensors``) into ``unet`` and merge it."""
    if has_lora_adapter(unet):
        raise ValueError("model.unet_lora: the UNet already carries an adapter")
    unet.load_lora_adapter(  # type: ignore[operator]
        lora_dir,
        prefix=lora_prefix(unet),
        adapter_name="default",
        weight_name=LORA_WEIGHT_NAME,
        use_safetensors=True,
    )
    if not has_lora_adapter(unet):
        raise ValueError(f"model.unet_lora={lora_dir!r}: no UNet LoRA weights found there")
    return merge_lora(unet)
