"""``inpo relabel [--scorer NAME]``: AI feedback (paper §5.3). A scorer (or ``relabel.scorers``, a
weighted mix) picks the winner of every pair of the pair index (``inpo prepare``'s output), written as
a new Pick-a-Pic-shaped pair set into ``<paths.outputs>/relabel/<scorer>``, with SmPO's smoothed label
``soft_label_0`` when ``relabel.tau`` has each scorer's temperature; train on it with
``inpo prepare data.source=<that folder>``. See :mod:`evaluation.relabel`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .. import layout
from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scorer", default=None, help="one scorer (default: relabel.scorers, else the first of eval.scorers)"
    )
    parser.add_argument("--out", default=None, help="output folder (default: <outputs>/relabel/<scorer>)")
    parser.add_argument("--rows-per-shard", type=int, default=2048, help="pairs per parquet shard")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(
    cfg: Config,
    scorer: str | None = None,
    out: str | None = None,
    rows_per_shard: int = 2048,
    progress: bool = True,
) -> dict[str, Any]:
    import torch

    from evaluation.relabel import build_judges, judge_weights, relabel_pairs
    from inpo.data.sources import PairDataError

    weights = {scorer: 1.0} if scorer else judge_weights(cfg)
    name = "+".join(weights)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out_dir = Path(out) if out is not None else layout.relabel_dir(cfg, name)
    judges = build_judges(cfg, weights, device)
    try:
        summary = relabel_pairs(
            layout.pair_index(cfg),
            cfg.data,
            judges,
            out_dir,
            tie_margin=cfg.relabel.tie_margin,
            batch_size=cfg.eval.score_batch_size,
            rows_per_shard=rows_per_shard,
            progress=progress,
        )
    except PairDataError as err:
        raise SystemExit(f"inpo relabel: {err}") from None
    print(json.dumps({k: v for k, v in summary.items() if k not in ("scorer", "judges")}))
    print(f"wrote {out_dir}; train on it with: inpo prepare data.source={out_dir}")
    return summary
