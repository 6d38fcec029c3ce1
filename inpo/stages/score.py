"""``inpo score``: every configured scorer (``eval.scorers``) on every generated image.

Writes ``<paths.outputs>/score/scores.parquet`` (one row per image and metric, raw values; scorer
``info()``, models and the world's guard metrics in its metadata), ``score/metrics.json`` (flat
``model/prompt_set/metric/stat`` numbers: medians, means, win-rates and mean gains vs
``eval.baseline`` with bootstrap intervals) and ``score/scorers.json`` (what each scorer loaded).
"""

from __future__ import annotations

import argparse
import json

from .. import layout
from ..config import Config
from ..io import write_json_atomic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def preflight(cfg: Config) -> None:
    from evaluation.scorers.base import check_scorer_names

    check_scorer_names(cfg.eval.scorers)


def run(cfg: Config, progress: bool = True) -> dict[str, float]:
    import torch

    from evaluation.generate import read_manifest
    from evaluation.score import comparison, flat_metrics, score_generated
    from evaluation.score_table import write_scores

    try:
        manifest, generation = read_manifest(layout.generate_manifest(cfg))
    except FileNotFoundError as err:
        raise SystemExit(f"inpo score: {err}") from None
    models = generation.get("models", sorted(set(manifest["model"])))
    if cfg.eval.baseline not in models:
        raise SystemExit(
            f"inpo score: eval.baseline {cfg.eval.baseline!r} was not generated; models: {models}"
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    from ..worlds import get_world

    table, meta = score_generated(
        cfg.eval,
        manifest,
        layout.generate_dir(cfg),
        device=device,
        progress=progress,
        guard=get_world(cfg).guard(),
    )
    metadata = {
        **meta,
        "models": models,
        "baseline": cfg.eval.baseline,
        "generation": generation.get("settings", {}),
    }
    write_scores(table, layout.scores_file(cfg), metadata)
    write_json_atomic(layout.scorer_info_file(cfg), meta["scorers"])
    metrics = flat_metrics(table, cfg.eval, meta["guards"], comparison(table, cfg.eval))
    write_json_atomic(layout.score_metrics(cfg), metrics)
    medians = {k: round(v, 4) for k, v in metrics.items() if k.endswith(("/median", "/win_rate"))}
    print(json.dumps(medians, indent=1))
    print(f"wrote {layout.scores_file(cfg)} ({len(table)} rows) and {layout.score_metrics(cfg)}")
    return metrics
