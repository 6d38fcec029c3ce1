"""``inpo toy pairs``: preference pairs from the toy base, judged by the oracle, into ``toy.pairs.out``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--grid", default=None, help="also write a PNG grid of pairs with the oracle's choices here"
    )
    parser.add_argument(
        "--grid-rows", type=int, default=16, help="pairs shown in the grid (default: %(default)s)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def write_pair_grid(pairs_dir: str | Path, path: str | Path, rows: int = 16) -> Path:
    """The first ``rows`` decodable pairs of the shard: winner framed green, loser red, tie grey."""
    import io

    import pyarrow.parquet as pq
    from PIL import Image

    from ..io import write_png_atomic
    from ..toyworld.figures import pair_grid
    from ..toyworld.pairs import SHARD_NAME

    table = pq.read_table(Path(pairs_dir) / SHARD_NAME).to_pylist()
    shown = []
    for row in table:
        try:
            img0, img1 = (Image.open(io.BytesIO(row[k])).convert("RGB") for k in ("jpg_0", "jpg_1"))
        except OSError:
            continue  # a planted corrupt row
        shown.append((row["caption"], img0, img1, row["label_0"], row["oracle_0"], row["oracle_1"]))
        if len(shown) == rows:
            break
    return write_png_atomic(path, pair_grid(shown))


def run(cfg: Config, grid: str | None = None, grid_rows: int = 16, progress: bool = True) -> dict:
    from ..toyworld.pairs import generate_pairs

    metadata = generate_pairs(cfg, cfg.toy.base.out, cfg.toy.pairs.out, progress=progress)
    print(json.dumps({k: v for k, v in metadata.items() if k != "settings"}, indent=2))
    if grid is not None:
        print(f"grid: {write_pair_grid(cfg.toy.pairs.out, grid, grid_rows)}")
    return metadata
