"""A trained LoRA adapter in the key layout kohya-ss, AUTOMATIC1111 and ComfyUI load.

The train stage saves an adapter the diffusers way (``pytorch_lora_weights.safetensors``:
``unet.``-prefixed keys, rank and alpha in the file's metadata; ``pipe.load_lora_weights(dir)``).
:func:`export_kohya` writes the same weights beside it as ``lora_kohya.safetensors``:
``lora_unet_<module path with _>.lora_down.weight`` / ``.lora_up.weight`` and one ``.alpha`` per
module, set to the adapter's ``lora_alpha`` (kohya scales by alpha / rank, as PEFT does; diffusers'
own converter writes alpha = rank, which changes the scale whenever alpha ≠ rank).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import atomic_file
from .saving import LORA_WEIGHT_NAME

KOHYA_WEIGHT_NAME = "lora_kohya.safetensors"


def export_kohya(adapter_dir: str | Path) -> Path:
    """Write ``<adapter_dir>/lora_kohya.safetensors`` from the adapter saved there; return its path."""
    import torch
    from diffusers.utils import convert_state_dict_to_kohya, convert_unet_state_dict_to_peft
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    source = Path(adapter_dir) / LORA_WEIGHT_NAME
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no LoRA adapter to export (model.lora.enabled was off?)")
    with safe_open(str(source), framework="pt") as f:
        raw_meta = json.loads((f.metadata() or {}).get("lora_adapter_metadata", "{}"))
    meta = {k.removeprefix("unet."): v for k, v in raw_meta.items()}  # diffusers prefixes the component
    if "lora_alpha" not in meta or "r" not in meta:
        raise ValueError(f"{source}: the adapter's rank and alpha are not in its metadata")
    raw = load_file(source)
    if any(k.startswith("transformer.") for k in raw):
        raise ValueError(f"{source}: an SD3 transformer adapter; the kohya layout is for UNet adapters")
    peft = convert_unet_state_dict_to_peft({k.removeprefix("unet."): v for k, v in raw.items()})
    kohya = convert_state_dict_to_kohya({f"unet.{k}": v.contiguous() for k, v in peft.items()})
    alpha = float(meta["lora_alpha"])
    kohya = {k: (torch.tensor(alpha) if k.endswith(".alpha") else v) for k, v in kohya.items()}
    header = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(meta["r"]),
        "ss_network_alpha": str(alpha),
    }
    out = Path(adapter_dir) / KOHYA_WEIGHT_NAME
    with atomic_file(out) as tmp:
        save_file(kohya, str(tmp), metadata=header)
    return out
