"""Weights locations of the config, checked before anything is loaded: an existing local file or
folder, or a hub id (which, with ``HF_HUB_OFFLINE=1``, must already be in the local hub cache)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .config import Config
from .errors import InputError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # `name` or `org/name`


def looks_local(location: str) -> bool:
    """A path rather than a hub id (``./x``, ``/x``, ``~/x``, ``a/b/c``, or something that exists)."""
    return location.startswith((".", "/", "~")) or not HUB_ID.match(location) or Path(location).exists()


def check_location(key: str, location: str | None) -> None:
    """Refuse a missing local folder, or (offline) a hub id that is not cached, naming ``key``."""
    if location is None or Path(location).expanduser().exists():
        return
    if looks_local(location):
        raise InputError(
            f"{key}: {location!r} does not exist (expected a local diffusers folder or a hub id)"
        )
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        try:
            from huggingface_hub import snapshot_download

            snapshot_download(location, local_files_only=True)
        except Exception:
            raise InputError(
                f"{key}: {location!r} is neither a local folder nor in the local hub cache, and "
                "HF_HUB_OFFLINE=1 forbids downloading it"
            ) from None


def check_model_locations(cfg: Config, extra_models: bool = False) -> None:
    """``model.pretrained`` (resolved), ``model.unet`` / ``unet_lora`` / ``vae``, and with
    ``extra_models`` every ``sample.extra_models`` entry."""
    check_location("model.pretrained", cfg.model.base)
    for key in ("unet", "unet_lora", "vae"):
        check_location(f"model.{key}", getattr(cfg.model, key))
    if extra_models:
        for name, location in cfg.sample.extra_models.items():
            check_location(f"sample.extra_models.{name}", location)
