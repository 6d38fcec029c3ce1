"""``inpo world base``: the configured world's base-model recipe (the toy world: from scratch, on CPU)."""

from __future__ import annotations

import argparse
import json

from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid", default=None, help="also write a PNG grid of held-out prompt samples here")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(cfg: Config, grid: str | None = None, progress: bool = True) -> dict:
    from ..worlds import WorldError, get_world

    world = get_world(cfg)
    try:
        metadata = world.train_base(cfg, progress=progress)
    except WorldError as err:
        raise SystemExit(f"inpo world base: {err}") from None
    summary = {k: metadata[k] for k in ("steps", "train_seconds", "wall_seconds", "final_loss")}
    summary["heldout"] = metadata["eval"]["heldout"]
    print(json.dumps(summary, indent=2))
    if grid is not None:
        print(f"grid: {world.base_figure(cfg, grid)}")
    return metadata
