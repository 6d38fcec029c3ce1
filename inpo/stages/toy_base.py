"""``inpo toy base``: train the toy world's base model from scratch (CPU) into ``toy.base.out``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid", default=None, help="also write a PNG grid of held-out prompt samples here")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def write_sample_grid(cfg: Config, base_dir: str | Path, path: str | Path, seeds: int = 8) -> Path:
    """Held-out prompts × ``seeds`` DDIM samples of the base (``sample.steps``, ``sample.guidance``)."""
    from ..io import write_png_atomic
    from ..sampling import to_pil
    from ..toyworld.figures import sample_grid
    from ..toyworld.model import load_model
    from ..toyworld.prompts import heldout_prompts
    from ..toyworld.sampling import ddim_sample

    model = load_model(base_dir)
    prompts = heldout_prompts(cfg)
    images = to_pil(
        ddim_sample(
            model,
            [p for p in prompts for _ in range(seeds)],
            list(range(seeds)) * len(prompts),
            cfg.sample.steps,
            cfg.sample.guidance,
        )
    )
    rows = [(p, images[i * seeds : (i + 1) * seeds]) for i, p in enumerate(prompts)]
    return write_png_atomic(path, sample_grid(rows))


def run(cfg: Config, grid: str | None = None, progress: bool = True) -> dict:
    from ..toyworld.base import train_base

    metadata = train_base(cfg, cfg.toy.base.out, progress=progress)
    summary = {k: metadata[k] for k in ("steps", "train_seconds", "wall_seconds", "final_loss")}
    summary["heldout"] = metadata["eval"]["heldout"]
    print(json.dumps(summary, indent=2))
    if grid is not None:
        print(f"grid: {write_sample_grid(cfg, cfg.toy.base.out, grid)}")
    return metadata
