"""Tables of statistics recomputed from a score table: summaries per model, and every model against a baseline.

summary = summarize_scores(table, by_category=True)               # mean / median (HPDv2 per style)
result = compare_to_baseline(table, "base", samples=2000, confidence=0.95, seed=0)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from evaluation import stats
from evaluation.score_table import validate_scores

ITEM_KEY = ["prompt_set", "prompt_id", "seed"]


def summarize_scores(table: pd.DataFrame, by_category: bool = False) -> pd.DataFrame:
    """One row per (model, prompt_set[, category], metric): ``n``, ``mean``, ``median``."""
    table = validate_scores(table)
    keys = ["model", "prompt_set"] + (["category"] if by_category else []) + ["metric"]
    grouped = table.groupby(keys, sort=True)["value"]
    return grouped.agg(n="size", mean="mean", median="median").reset_index()


def paired_values(
    table: pd.DataFrame, model: str, baseline: str, metric: str, prompt_set: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a, b, prompt_ids)`` aligned on (prompt_id, seed); an item scored for one model only is an error."""
    rows = table[(table["metric"] == metric) & (table["prompt_set"] == prompt_set)]
    a = rows[rows["model"] == model].set_index(["prompt_id", "seed"])["value"]
    b = rows[rows["model"] == baseline].set_index(["prompt_id", "seed"])["value"]
    only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
    if len(only_a) or len(only_b):
        raise ValueError(
            f"{prompt_set}/{metric}: items are not paired: {len(only_a)} scored only for {model!r}, "
            f"{len(only_b)} only for {baseline!r} (e.g. {(list(only_a) + list(only_b))[0]})"
        )
    b = b.loc[a.index]
    return a.to_numpy(), b.to_numpy(), a.index.get_level_values("prompt_id").to_numpy()


def paired_comparison(
    a: np.ndarray,
    b: np.ndarray,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> dict[str, float | bool]:
    """Win-rate and mean gain of ``a`` over ``b`` (paired items, [N] each) with bootstrap intervals,
    and whether ``a`` beats ``b`` (both lower bounds above chance)."""
    win = stats.win_rate_ci(a, b, samples, confidence, seed, groups)
    gain = stats.mean_difference_ci(a, b, samples, confidence, seed, groups)
    return {
        "win_rate": win.estimate,
        "win_low": win.low,
        "win_high": win.high,
        "mean_gain": gain.estimate,
        "gain_low": gain.low,
        "gain_high": gain.high,
        "beats": stats.beats(win, gain),
    }


def compare_to_baseline(
    table: pd.DataFrame,
    baseline: str,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    unit: Literal["prompt", "item"] = "prompt",
) -> pd.DataFrame:
    """Every other model against ``baseline``, per (prompt_set, metric).

    Columns: model, prompt_set, metric, n_items, n_prompts, mean, median, baseline_mean,
    baseline_median, win_rate, win_low, win_high, mean_gain, gain_low, gain_high, beats.
    ``unit="prompt"`` resamples prompts (with all their seeds); ``"item"`` resamples items.
    """
    table = validate_scores(table)
    if baseline not in set(table["model"]):
        raise KeyError(f"baseline {baseline!r} not in the score table; models: {sorted(set(table['model']))}")
    if unit not in ("prompt", "item"):
        raise ValueError(f"unit must be 'prompt' or 'item', got {unit!r}")
    records = []
    for (prompt_set, metric), rows in table.groupby(["prompt_set", "metric"], sort=True):
        for model in sorted(set(rows["model"]) - {baseline}):
            a, b, prompt_ids = paired_values(rows, model, baseline, str(metric), str(prompt_set))
            groups = prompt_ids if unit == "prompt" else None
            records.append(
                {
                    "model": model,
                    "prompt_set": prompt_set,
                    "metric": metric,
                    "n_items": int(a.size),
                    "n_prompts": int(np.unique(prompt_ids).size),
                    "mean": float(a.mean()),
                    "median": float(np.median(a)),
                    "baseline_mean": float(b.mean()),
                    "baseline_median": float(np.median(b)),
                    **paired_comparison(a, b, samples, confidence, seed, groups),
                }
            )
    return pd.DataFrame.from_records(records)
