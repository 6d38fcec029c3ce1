"""Write dotted overrides into ``params.yaml`` the way ``dvc exp run -S`` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def _has_key(raw: dict[str, Any], dotted: str) -> bool:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def write_params(params_path: Path, overrides: list[str]) -> None:
    """Apply dotted overrides to ``params_path`` exactly as ``dvc exp run -S`` does (DVC's Hydra
    override writer, comments kept); a key that validates but is absent from the file is added."""
    from dvc.utils.hydra import apply_overrides

    if not overrides:
        return
    raw = yaml.safe_load(params_path.read_text()) or {}
    hydra = [o if _has_key(raw, o.split("=", 1)[0].strip()) else "+" + o for o in overrides]
    apply_overrides(str(params_path), hydra)
