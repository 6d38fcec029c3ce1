"""``inpo relabel [--scorer NAME]``: AI feedback (paper §5.3). A scorer picks the winner of every pair of
the pair index (``inpo prepare``'s output), written as a new Pick-a-Pic-shaped pair set into
``<paths.outputs>/relabel/<scorer>``; train on it with ``inpo prepare data.source=<that folder>``.
See :mod:`evaluation.relabel`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .. import layout
from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scorer", default=None, help="scorer name (default: the first of eval.scorers)")
    parser.add_argument("--out", default=None, help="output folder (default: <outputs>/relabel/<scorer>)")
    parser.add_argument("--tie-margin", type=float, default=0.0, help="|score difference| <= this is a tie")
    parser.add_argument("--rows-per-shard", type=int, default=2048, help="pairs per parquet shard")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(
    cfg: Config,
    scorer: str | None = None,
    out: str | None = None,
    tie_margin: float = 0.0,
    rows_per_shard: int = 2048,
    progress: bool = True,
) -> dict[str, Any]:
    import torch

    from evaluation.relabel import relabel_pairs
    from evaluation.scorers import build_scorer
    from inpo.data.sources import PairDataError

    name = scorer or cfg.eval.scorers[0]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out_dir = Path(out) if out is not None else layout.relabel_dir(cfg, name)
    try:
        summary = relabel_pairs(
            layout.pair_index(cfg),
            cfg.data,
            build_scorer(name, cfg.eval, device=device),
            out_dir,
            tie_margin=tie_margin,
            batch_size=cfg.eval.score_batch_size,
            rows_per_shard=rows_per_shard,
            progress=progress,
        )
    except PairDataError as err:
        raise SystemExit(f"inpo relabel: {err}") from None
    print(json.dumps({k: v for k, v in summary.items() if k != "scorer"}))
    print(f"wrote {out_dir}; train on it with: inpo prepare data.source={out_dir}")
    return summary
