"""``inpo prepare``: filter the pair source into ``<paths.outputs>/prepare/pairs.parquet`` + ``summary.json``.

Drops ties, pairs with a corrupt image (the whole pair), optional duplicates and over-long captions;
writes a compact pair index that points into the source (images are never copied). See
:mod:`inpo.data.filtering` for the rules and their order.
"""

from __future__ import annotations

import argparse
import json

from .. import layout
from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def preflight(cfg: Config) -> None:
    from ..data.checks import check_data_source

    check_data_source(cfg)


def run(cfg: Config, progress: bool = True) -> None:
    from ..data.filtering import PAIRS_FILE, SUMMARY_FILE, prepare_pairs

    # data.source (and the world it was made for) is checked by preflight() before this runs;
    # a bad row or column is a PairDataError, which the command prints naming the file and row

    out = layout.pair_index(cfg).parent  # <paths.outputs>/prepare
    assert layout.pair_index(cfg) == out / PAIRS_FILE and layout.prepare_summary(cfg) == out / SUMMARY_FILE
    summary = prepare_pairs(cfg.data, out, progress=progress)
    print(json.dumps({k: v for k, v in summary.to_dict().items() if k != "corrupt_examples"}))
    print(f"wrote {out / PAIRS_FILE} ({summary.kept} pairs) and {out / SUMMARY_FILE}")
