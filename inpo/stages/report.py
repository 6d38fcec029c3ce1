"""``inpo report``: ``<paths.outputs>/report/report.md`` + ``report.html`` (self-contained), ``winrates.json``
and ``charts/*.png`` (win-rate bars with intervals, score distributions, an image grid of the same
prompts and seeds across models), recomputed from ``score/scores.parquet``. See :mod:`evaluation.report`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import layout
from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="write the report here instead of <outputs>/report")
    parser.add_argument(
        "--grid-prompts", type=int, default=8, help="prompts per image grid (default: %(default)s)"
    )
    parser.add_argument(
        "--grid-seeds", type=int, default=4, help="seeds per prompt in the grid (default: %(default)s)"
    )
    parser.add_argument("--title", default="inpo evaluation report", help="the report's title")


def run(
    cfg: Config,
    out: str | None = None,
    grid_prompts: int = 8,
    grid_seeds: int = 4,
    title: str = "inpo evaluation report",
) -> dict[str, Path]:
    from evaluation.generate import read_manifest
    from evaluation.report import build_report
    from evaluation.score_table import read_score_metadata, read_scores

    scores = layout.scores_file(cfg)
    if not scores.is_file():
        raise SystemExit(f"inpo report: {scores} not found; run `inpo score` first")
    table, meta = read_scores(scores), read_score_metadata(scores)
    manifest = None
    if layout.generate_manifest(cfg).is_file():  # the image grid needs the generated images
        manifest = read_manifest(layout.generate_manifest(cfg))[0]
    else:
        print(f"inpo report: no {layout.generate_manifest(cfg)}; the report has no image grid")
    out_dir = Path(out) if out is not None else layout.report_dir(cfg)
    paths = build_report(
        table,
        meta,
        out_dir,
        cfg.eval,
        manifest=manifest,
        images_root=layout.generate_dir(cfg),
        grid_prompts=grid_prompts,
        grid_seeds=grid_seeds,
        title=title,
    )
    paths["cards"] = write_evaluated_cards(cfg, paths["winrates"], out_dir / "cards")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return paths


def write_evaluated_cards(cfg: Config, winrates_path: Path, cards: Path) -> Path:
    """``cards/<method>.md``: each trained method's model card with its win-rates."""
    import shutil

    from evaluation.report import read_winrates

    from ..io import write_text_atomic
    from ..model_card import model_card, training_start

    winrates = read_winrates(winrates_path)
    shutil.rmtree(cards, ignore_errors=True)  # a dropped method leaves no card behind
    for method in cfg.methods:
        if method in winrates:
            card = model_card(cfg, method, training_start(cfg), None, winrates[method])
            write_text_atomic(cards / f"{method}.md", card)
    return cards
