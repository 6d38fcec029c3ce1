"""Score every generated image with every configured scorer; statistics against the baseline.

    table, meta = score_generated(cfg.eval, generate_root, device="cuda")
    write_scores(table, "outputs/score/scores.parquet", meta)      # one row per image and metric
    metrics = flat_metrics(table, cfg.eval, meta["guards"])          # for metrics.json / MLflow

A world with guard metrics (:meth:`inpo.worlds.base.World.guard`) adds them for its prompt set: the
toy world's ``prompt_following`` per image (1 when colour, shape and background all match the
prompt) and, per model, the ``diversity`` of each prompt's images across seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evaluation.compare import compare_to_baseline, summarize_scores
from evaluation.prompts import EvalItem
from evaluation.score_table import concat_scores, score_rows
from inpo.metric_keys import metric_key

if TYPE_CHECKING:
    from PIL import Image

    from inpo.config.sections import EvalConfig
    from inpo.worlds.base import Guard

LOAD_CHUNK = 256  # images decoded at a time


def manifest_items(rows: pd.DataFrame) -> list[EvalItem]:
    """The evaluation items of manifest rows, in row order."""
    return [
        EvalItem(str(r.prompt_set), str(r.prompt_id), str(r.prompt), int(r.seed), str(r.category))
        for r in rows.itertuples(index=False)
    ]


def load_images(root: str | Path, paths: Sequence[str]) -> list[Image.Image]:
    """Decode images (RGB) at ``root/path`` for each path."""
    from PIL import Image

    out = []
    for rel in paths:
        with Image.open(Path(root) / rel) as img:
            out.append(img.convert("RGB"))
    return out


def score_rows_of(scorer: Any, rows: pd.DataFrame, root: str | Path, progress: Any = None) -> np.ndarray:
    """``scorer.score`` of each manifest row's image and prompt, decoded ``LOAD_CHUNK`` at a time → [N]."""
    values = []
    for start in range(0, len(rows), LOAD_CHUNK):
        chunk = rows.iloc[start : start + LOAD_CHUNK]
        images = load_images(root, chunk["path"].tolist())
        values.append(
            np.asarray(scorer.score(images, chunk["prompt"].tolist()), dtype=np.float64).reshape(-1)
        )
        if progress is not None:
            progress.update(len(chunk))
    return np.concatenate(values) if values else np.zeros(0)


def guard_metrics(guard: Guard, rows: pd.DataFrame, root: str | Path) -> tuple[np.ndarray, float]:
    """The guard's per-image values ([N]) and its spread over one model's images of ``guard.prompt_set``
    (NaN with one seed per prompt: a spread across seeds needs two)."""
    images = load_images(root, rows["path"].tolist())
    prompts = rows["prompt"].tolist()
    per_image = np.asarray(guard.per_image(images, prompts), dtype=np.float64)
    spread = guard.spread(images, prompts) if rows.groupby("prompt").size().max() > 1 else float("nan")
    return per_image, spread


def score_generated(
    eval_cfg: EvalConfig,
    manifest: pd.DataFrame,
    root: str | Path,
    device: str = "cpu",
    scorers: dict[str, Any] | None = None,
    progress: bool = True,
    guard: Guard | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The score table of every manifest image under every scorer of ``eval.scorers`` (or the given
    ``scorers``, name → object), plus the world's guard metrics (``guard``, on its prompt set). Returns ``(table, metadata)``; metadata holds
    ``scorers`` (metric → ``info()``) and ``guards`` (model → prompt set → {"diversity": x})."""
    from tqdm.auto import tqdm

    from evaluation.scorers import build_scorer

    names = list(scorers) if scorers is not None else list(eval_cfg.scorers)
    tables, infos = [], {}
    bar = tqdm(total=len(manifest) * len(names), desc="score", disable=not progress, mininterval=2.0)
    for name in names:
        scorer = scorers[name] if scorers is not None else build_scorer(name, eval_cfg, device=device)
        metric = str(scorer.name)
        infos[metric] = scorer.info()
        bar.set_postfix_str(metric)
        for (model, prompt_set), rows in manifest.groupby(["model", "prompt_set"], sort=False):
            try:
                values = score_rows_of(scorer, rows, root, bar)
            except ValueError as err:
                raise ValueError(f"scorer {name!r} on {model}/{prompt_set}: {err}") from err
            tables.append(score_rows(str(model), metric, manifest_items(rows), values))
        del scorer
    bar.close()
    guards: dict[str, dict[str, dict[str, float]]] = {}
    guarded = manifest.iloc[0:0] if guard is None else manifest[manifest["prompt_set"] == guard.prompt_set]
    for model, rows in guarded.groupby("model", sort=False):
        assert guard is not None
        per_image, spread = guard_metrics(guard, rows, root)
        tables.append(score_rows(str(model), guard.metric, manifest_items(rows), per_image))
        guards.setdefault(str(model), {})[guard.prompt_set] = {guard.spread_name: spread}
    if len(guarded):
        assert guard is not None
        infos[guard.metric] = {"metric": guard.metric, "kind": "programmatic", "formula": guard.formula}
    if not tables:
        raise ValueError("nothing to score: the manifest is empty or no scorer is configured (eval.scorers)")
    return concat_scores(tables), {"scorers": infos, "guards": guards}


def comparison(table: pd.DataFrame, eval_cfg: EvalConfig) -> pd.DataFrame:
    """Every model against ``eval.baseline`` with ``eval``'s bootstrap settings."""
    return compare_to_baseline(
        table,
        eval_cfg.baseline,
        samples=eval_cfg.bootstrap_samples,
        confidence=eval_cfg.confidence,
        seed=eval_cfg.bootstrap_seed,
        unit=eval_cfg.bootstrap_unit,
    )


WIN_STATS = ("win_rate", "win_low", "win_high", "mean_gain", "gain_low", "gain_high")


def flat_metrics(
    table: pd.DataFrame, eval_cfg: EvalConfig, guards: dict[str, Any], compared: pd.DataFrame | None = None
) -> dict[str, float]:
    """Flat ``{model/prompt_set/metric/stat: number}``: ``n``, ``mean``, ``median`` for every model;
    win-rate and mean gain vs ``eval.baseline`` with interval bounds and ``beats`` (0/1) for the
    others; ``model/<prompt set>/<spread>`` for the world's guard (e.g. ``base/toy/diversity``). Raw values (HPS/CLIP as cosines)."""
    out: dict[str, float] = {}
    for row in summarize_scores(table).itertuples(index=False):
        for stat in ("n", "mean", "median"):
            out[metric_key(row.model, row.prompt_set, row.metric, stat)] = float(getattr(row, stat))
    compared = comparison(table, eval_cfg) if compared is None else compared
    for row in compared.itertuples(index=False):
        for stat in WIN_STATS:
            out[metric_key(row.model, row.prompt_set, row.metric, stat)] = float(getattr(row, stat))
        out[metric_key(row.model, row.prompt_set, row.metric, "beats")] = float(bool(row.beats))
    for model, per_set in guards.items():
        for prompt_set, values in per_set.items():
            for name, value in values.items():
                if value == value:  # not NaN (one seed per prompt has no diversity)
                    out[metric_key(model, prompt_set, name)] = float(value)
    return out


def read_flat_metrics(path: str | Path) -> dict[str, float]:
    """``score/metrics.json`` as :func:`flat_metrics` made it (the score stage writes it)."""
    import json

    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not all(isinstance(v, int | float) for v in data.values()):
        raise ValueError(f"{path}: expected a flat JSON object of numbers (model/prompt_set/metric/stat)")
    return {str(k): float(v) for k, v in data.items()}


def winrates_from_flat_metrics(metrics: dict[str, float], baseline: str) -> dict[str, Any]:
    """:func:`flat_metrics`'s ``model/prompt_set/metric/stat`` keys → the nesting of the report's
    ``winrates.json``, ``{model: {prompt_set: {metric: {win_rate, win_low, ...}}}}`` (models other
    than ``baseline``; only the :data:`WIN_STATS`)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) != 4 or parts[0] == baseline or parts[3] not in WIN_STATS:
            continue
        model, prompt_set, metric, stat = parts
        out.setdefault(model, {}).setdefault(prompt_set, {}).setdefault(metric, {})[stat] = float(value)
    return out
