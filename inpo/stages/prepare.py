"""``inpo prepare``: filter the pair source into ``<paths.outputs>/prepare/pairs.parquet`` + ``summary.json``.

Drops ties, pairs with a corrupt image (the whole pair), optional duplicates and over-long captions;
writes a compact pair index that points into the source (images are never copied). See
:mod:`inpo.data.filtering` for the rules and their order.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import layout
from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def check_source_world(cfg: Config) -> None:
    """Refuse pairs a world made for another world (``metadata.json``'s ``world``; one folder serves
    every world, :func:`inpo.layout.world_pairs_dir`), before any work."""
    meta = Path(cfg.data.source) / "metadata.json"
    if not meta.is_file():
        return
    try:
        made_for = json.loads(meta.read_text()).get("world")
    except (json.JSONDecodeError, AttributeError):
        return  # not a world's record: a plain data folder may hold any metadata.json
    if made_for is not None and made_for != cfg.world:
        raise SystemExit(
            f"inpo prepare: {cfg.data.source} holds world {made_for!r}'s pairs ({meta}) but world is "
            f"{cfg.world!r}; run `inpo world pairs` (or `dvc repro`) for {cfg.world!r} first"
        )


def run(cfg: Config, progress: bool = True) -> None:
    from ..data.filtering import PAIRS_FILE, SUMMARY_FILE, prepare_pairs
    from ..data.sources import PairDataError

    check_source_world(cfg)

    out = layout.pair_index(cfg).parent  # <paths.outputs>/prepare
    assert layout.pair_index(cfg) == out / PAIRS_FILE and layout.prepare_summary(cfg) == out / SUMMARY_FILE
    try:
        summary = prepare_pairs(cfg.data, out, progress=progress)
    except PairDataError as err:
        raise SystemExit(f"inpo prepare: {err}") from None
    print(json.dumps({k: v for k, v in summary.to_dict().items() if k != "corrupt_examples"}))
    print(f"wrote {out / PAIRS_FILE} ({summary.kept} pairs) and {out / SUMMARY_FILE}")
