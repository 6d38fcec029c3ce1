"""``inpo prepare``: filter the pair source into ``<paths.outputs>/prepare/pairs.parquet`` + ``summary.json``.

Drops ties, pairs with a corrupt image (the whole pair), optional duplicates and over-long captions;
writes a compact pair index that points into the source (images are never copied). See
:mod:`inpo.data.filtering` for the rules and their order.
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import layout
from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def run(cfg: Config, no_progress: bool = False) -> None:
    from ..data.filtering import PAIRS_FILE, SUMMARY_FILE, prepare_pairs
    from ..data.sources import PairDataError

    out = layout.pair_index(cfg).parent  # <paths.outputs>/prepare
    assert layout.pair_index(cfg) == out / PAIRS_FILE and layout.prepare_summary(cfg) == out / SUMMARY_FILE
    try:
        summary = prepare_pairs(cfg.data, out, progress=not no_progress)
    except PairDataError as err:
        print(f"inpo prepare: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps({k: v for k, v in summary.to_dict().items() if k != "corrupt_examples"}))
    print(f"wrote {out / PAIRS_FILE} ({summary.kept} pairs) and {out / SUMMARY_FILE}")
