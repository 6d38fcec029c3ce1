"""Statistics on paired per-image scores (numpy only, no I/O).

``a[i]`` and ``b[i]`` are two models' scores of the same item (same prompt and seed).

- win-rate of A over B: ``mean(w_i)``, ``w_i = 1 if a_i > b_i, ½ if a_i = b_i, 0 otherwise``;
- mean gain: ``mean(a_i − b_i)``;
- paired bootstrap: resample units with replacement (items, or prompts with all their seeds when
  ``groups`` gives each item's prompt), recompute the statistic; the interval is the
  ``(1−c)/2`` and ``1−(1−c)/2`` quantiles of the replicates (percentile method);
- "beats": the lower bounds of both the win-rate interval (> 0.5) and the mean-gain interval (> 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval ``[low, high]`` at ``confidence``."""

    estimate: float
    low: float
    high: float
    confidence: float


def _paired(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_arr.ndim != 1 or a_arr.shape != b_arr.shape:
        raise ValueError(
            f"paired scores must be two 1-D arrays of equal length, got {a_arr.shape} and {b_arr.shape}"
        )
    if a_arr.size == 0:
        raise ValueError("paired scores are empty")
    if not (np.isfinite(a_arr).all() and np.isfinite(b_arr).all()):
        raise ValueError("paired scores contain NaN or inf")
    return a_arr, b_arr


def win_indicator(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """``w_i``: 1 where ``a_i > b_i``, 0.5 on ties, 0 where ``a_i < b_i``. ``[N], [N]`` → ``[N]``."""
    a_arr, b_arr = _paired(a, b)
    return (a_arr > b_arr).astype(np.float64) + 0.5 * (a_arr == b_arr)


def win_rate(a: ArrayLike, b: ArrayLike) -> float:
    """Share of items where A scores higher than B, ties counting ½."""
    return float(win_indicator(a, b).mean())


def mean_difference(a: ArrayLike, b: ArrayLike) -> float:
    """``mean(a_i − b_i)``."""
    a_arr, b_arr = _paired(a, b)
    return float((a_arr - b_arr).mean())


def summarize(values: ArrayLike) -> dict[str, float]:
    """``{"n", "mean", "median"}`` of one model's scores."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values to summarize")
    return {"n": int(v.size), "mean": float(v.mean()), "median": float(np.median(v))}


def bootstrap_means(
    values: ArrayLike, samples: int, seed: int = 0, groups: Sequence[object] | np.ndarray | None = None
) -> np.ndarray:
    """Bootstrap replicates of ``mean(values)``. ``[N]`` → ``[samples]``.

    Without ``groups`` each item is a unit; with ``groups`` (one label per item, e.g. its prompt)
    whole groups are resampled and a replicate is ``Σ sums[g] / Σ counts[g]`` over the drawn groups.
    Seeded: the same (N, groups, samples, seed) draws the same units.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"expected a non-empty 1-D array, got shape {v.shape}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if groups is None:
        sums, counts = v, np.ones_like(v)
    else:
        labels = np.asarray(groups)
        if labels.shape != v.shape:
            raise ValueError(f"groups has shape {labels.shape}; expected one label per value {v.shape}")
        inverse = np.unique(labels, return_inverse=True)[1].reshape(-1)
        sums = np.bincount(inverse, weights=v).astype(np.float64)
        counts = np.bincount(inverse).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, sums.size, size=(samples, sums.size))
    return sums[draws].sum(axis=1) / counts[draws].sum(axis=1)


def percentile_interval(replicates: ArrayLike, confidence: float) -> tuple[float, float]:
    """``(q((1−c)/2), q(1−(1−c)/2))`` of the replicates (numpy's linear quantiles)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.asarray(replicates, dtype=np.float64), [tail, 1.0 - tail])
    return float(low), float(high)


def _interval(per_item: np.ndarray, samples: int, confidence: float, seed: int, groups: object) -> Interval:
    replicates = bootstrap_means(per_item, samples, seed, groups)  # type: ignore[arg-type]
    low, high = percentile_interval(replicates, confidence)
    return Interval(float(per_item.mean()), low, high, confidence)


def win_rate_ci(
    a: ArrayLike,
    b: ArrayLike,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: Sequence[object] | np.ndarray | None = None,
) -> Interval:
    """Win-rate of A over B with a paired bootstrap interval (ties ½)."""
    return _interval(win_indicator(a, b), samples, confidence, seed, groups)


def mean_difference_ci(
    a: ArrayLike,
    b: ArrayLike,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: Sequence[object] | np.ndarray | None = None,
) -> Interval:
    """Mean paired gain ``mean(a − b)`` with a paired bootstrap interval."""
    a_arr, b_arr = _paired(a, b)
    return _interval(a_arr - b_arr, samples, confidence, seed, groups)


def beats(win: Interval, gain: Interval) -> bool:
    """A beats B when the win-rate interval lies above 0.5 and the mean-gain interval above 0."""
    return win.low > 0.5 and gain.low > 0.0
