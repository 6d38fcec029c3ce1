"""The report's pictures (matplotlib, Agg): win-rate charts with intervals, score distributions and
the image grid of every model on the same prompts and seeds."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.report_names import GRID_TILE, display_name, display_scale

# ----------------------------------------------------------------------------------------- charts


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    from inpo.io import atomic_file

    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return path


def plot_winrates(
    compared: pd.DataFrame,
    prompt_set: str,
    models: Sequence[str],
    metrics: Sequence[str],
    baseline: str,
    path: Path,
) -> Path:
    """Grouped bars: win-rate (%) over the baseline per metric, one bar per model, interval whiskers."""
    plt = _pyplot()
    rows = compared[compared["prompt_set"] == prompt_set].set_index(["model", "metric"])
    others = [m for m in models if any((m, k) in rows.index for k in metrics)]
    width = 0.8 / max(len(others), 1)
    x = np.arange(len(metrics))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(metrics) * max(len(others), 1) + 1.5), 3.6))
    for i, model in enumerate(others):
        est = np.array(
            [100 * rows.loc[(model, m), "win_rate"] if (model, m) in rows.index else np.nan for m in metrics]
        )
        low = np.array(
            [100 * rows.loc[(model, m), "win_low"] if (model, m) in rows.index else np.nan for m in metrics]
        )
        high = np.array(
            [100 * rows.loc[(model, m), "win_high"] if (model, m) in rows.index else np.nan for m in metrics]
        )
        ax.bar(
            x + (i - (len(others) - 1) / 2) * width,
            est,
            width,
            yerr=[est - low, high - est],
            capsize=3,
            label=model,
        )
    ax.axhline(50, color="k", linestyle="--", linewidth=1)
    ax.set_xticks(x, list(metrics))
    ax.set_ylim(0, 100)
    ax.set_ylabel(f"win-rate over {baseline} (%)")
    ax.set_title(f"{prompt_set}: win-rate over {baseline}")
    if others:
        ax.legend(loc="lower right", fontsize=8)
    return _finish(plt, fig, path)


def _finish(plt: Any, fig: Any, path: Path) -> Path:
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_distributions(
    table: pd.DataFrame, prompt_set: str, models: Sequence[str], metrics: Sequence[str], path: Path
) -> Path:
    """One panel per metric: box plots of every model's per-image scores (display scale)."""
    plt = _pyplot()
    rows = table[table["prompt_set"] == prompt_set]
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(max(3.2, 1.0 * len(models) + 1.2) * len(metrics), 3.4), squeeze=False
    )
    for ax, metric in zip(axes[0], metrics):
        data = [
            rows[(rows["metric"] == metric) & (rows["model"] == m)]["value"].to_numpy()
            * display_scale(metric)
            for m in models
        ]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(models) + 1), list(models), rotation=30)
        ax.set_title(display_name(metric))
    fig.suptitle(f"{prompt_set}: per-image scores")
    return _finish(plt, fig, path)


def grid_selection(manifest: pd.DataFrame, prompt_set: str, prompts: int, seeds: int) -> pd.DataFrame:
    """The first ``prompts`` prompt ids of the set (manifest order) with their first ``seeds`` seeds."""
    rows = manifest[manifest["prompt_set"] == prompt_set].drop_duplicates(["prompt_id", "seed"])
    chosen_ids = list(dict.fromkeys(rows["prompt_id"]))[:prompts]
    picked = rows[rows["prompt_id"].isin(chosen_ids)].groupby("prompt_id", sort=False).head(seeds)
    return picked.loc[:, ["prompt_id", "seed", "prompt"]].reset_index(drop=True)


def plot_image_grid(
    manifest: pd.DataFrame,
    root: Path,
    prompt_set: str,
    models: Sequence[str],
    path: Path,
    prompts: int = 8,
    seeds: int = 4,
) -> Path:
    """Rows: prompts; columns: models × seeds (the same seeds for every model)."""
    from PIL import Image

    plt = _pyplot()
    chosen = grid_selection(manifest, prompt_set, prompts, seeds)
    ids = list(dict.fromkeys(chosen["prompt_id"]))
    per_prompt = chosen.groupby("prompt_id", sort=False)["seed"].apply(list).to_dict()
    n_seeds = max(len(s) for s in per_prompt.values())
    where = manifest.set_index(["model", "prompt_set", "prompt_id", "seed"])["path"]
    cols = len(models) * n_seeds
    fig, axes = plt.subplots(
        len(ids), cols, figsize=(1.15 * cols + 2.4, 1.15 * len(ids) + 0.5), squeeze=False
    )
    for r, pid in enumerate(ids):
        text = chosen[chosen["prompt_id"] == pid]["prompt"].iloc[0]
        for mi, model in enumerate(models):
            for si in range(n_seeds):
                ax = axes[r][mi * n_seeds + si]
                ax.set_xticks([])
                ax.set_yticks([])
                seeds_here = per_prompt[pid]
                key = (model, prompt_set, pid, seeds_here[si]) if si < len(seeds_here) else None
                if key is not None and key in where.index:
                    with Image.open(root / where[key]) as opened:
                        tile = opened.convert("RGB")
                    tile.thumbnail((GRID_TILE, GRID_TILE))
                    ax.imshow(np.asarray(tile), interpolation="nearest")
                if r == 0:
                    ax.set_title(
                        f"{model}\nseed {seeds_here[si]}" if si < len(seeds_here) else model, fontsize=7
                    )
        axes[r][0].set_ylabel(
            "\n".join(textwrap.wrap(text, 28)[:3]), fontsize=7, rotation=0, ha="right", va="center"
        )
    fig.suptitle(f"{prompt_set}: the same prompts and seeds across models", fontsize=9)
    return _finish(plt, fig, path)
