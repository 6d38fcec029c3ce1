"""How the report names and scales metrics (shared by its tables and its charts)."""

from __future__ import annotations

import re

SCALED_PREFIXES = ("hps", "clip")  # stored as cosines, printed ×100 (spec: stored values)
PER_CATEGORY_SETS = ("hpdv2",)  # prompt sets whose medians are also shown per category (style)
GRID_TILE = 128  # longest side of an image in the grid, pixels


def display_scale(metric: str) -> float:
    """100 for HPS (``hps-v2.x``) and CLIP (cosines), else 1."""
    return 100.0 if metric.startswith(SCALED_PREFIXES) else 1.0


def display_name(metric: str) -> str:
    return f"{metric} ×100" if display_scale(metric) != 1.0 else metric


def safe_name(text: str) -> str:
    """A file-name-safe version of a prompt-set name."""
    return re.sub(r"[^\w.-]", "_", text)
