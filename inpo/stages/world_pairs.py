"""``inpo world pairs``: the configured world's preference pairs, into ``<paths.data>/<world>/pairs``."""

from __future__ import annotations

import argparse
import json

from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--grid", default=None, help="also write a PNG grid of pairs with the judge's choices here"
    )
    parser.add_argument(
        "--grid-rows", type=int, default=16, help="pairs shown in the grid (default: %(default)s)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(cfg: Config, grid: str | None = None, grid_rows: int = 16, progress: bool = True) -> dict:
    from ..worlds import WorldError, get_world

    world = get_world(cfg)
    try:
        metadata = world.make_pairs(cfg, progress=progress)
    except WorldError as err:
        raise SystemExit(f"inpo world pairs: {err}") from None
    print(json.dumps({k: v for k, v in metadata.items() if k != "settings"}, indent=2))
    if grid is not None:
        print(f"grid: {world.pair_figure(cfg, grid, grid_rows)}")
    return metadata
