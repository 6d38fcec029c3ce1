"""Weight files for scorers: a local path or a hub file, loaded only as safetensors or weights-only pickles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def resolve_file(spec: str) -> Path:
    """A local file path, or a hub file written ``org/repo/path/in/repo``, as a local path.

    Hub files go through ``huggingface_hub.hf_hub_download`` (its cache; offline when
    ``HF_HUB_OFFLINE=1``).
    """
    local = Path(spec).expanduser()
    if local.is_file():
        return local
    parts = spec.split("/")
    if len(parts) < 3 or local.exists() or local.is_absolute() or spec.startswith((".", "~")):
        raise FileNotFoundError(
            f"weights {spec!r}: not a local file and not a hub file of the form org/repo/file"
        )
    from huggingface_hub import hf_hub_download

    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        return Path(hf_hub_download(repo_id, filename))
    except Exception as err:  # network, offline mode, missing file: say which file was wanted
        raise FileNotFoundError(
            f"weights {spec!r}: not a local file, and hub file {filename!r} of {repo_id!r} could not be fetched "
            f"({type(err).__name__}: {err})"
        ) from err


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or of a ``.pt``/``.pth``/``.bin`` file read with
    ``torch.load(weights_only=True)``; a checkpoint of the form ``{"state_dict": {...}}`` is unwrapped."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: object = load_file(str(path), device="cpu")
    elif path.suffix in PICKLE_SUFFIXES:
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise ValueError(
            f"{path}: unsupported weights format {path.suffix!r}; expected .safetensors or one of {PICKLE_SUFFIXES}"
        )
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (optionally under 'state_dict')")
    return state


def check_loading_info(info: dict[str, Any], source: str) -> None:
    """Fail when transformers' ``from_pretrained`` left weights missing or re-initialised for a size mismatch
    (unexpected keys, such as a text tower the image scorer does not use, are fine)."""
    missing = list(info.get("missing_keys", []))
    mismatched = list(info.get("mismatched_keys", []))
    if missing or mismatched:
        raise ValueError(
            f"{source}: weights do not fit the architecture: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, wrong shape {mismatched[:5]}"
        )
