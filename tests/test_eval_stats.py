"""Statistics against hand-computed values, the per-image score table, and model-vs-baseline tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation import stats
from evaluation.compare import compare_to_baseline, summarize_scores
from evaluation.prompts import EvalItem
from evaluation.score_table import (
    SCORE_COLUMNS,
    concat_scores,
    read_score_metadata,
    read_scores,
    score_rows,
    write_scores,
)


def test_win_rate_counts_ties_as_half_and_mean_difference() -> None:
    a, b = [3.0, 1.0, 2.0, 5.0], [1.0, 1.0, 4.0, 2.0]
    # wins: 3>1 → 1, 1=1 → ½, 2<4 → 0, 5>2 → 1; (1 + ½ + 0 + 1) / 4 = 0.625
    assert stats.win_indicator(a, b).tolist() == [1.0, 0.5, 0.0, 1.0]
    assert stats.win_rate(a, b) == 0.625
    assert stats.win_rate(b, a) == 0.375  # 1 − 0.625
    # differences 2, 0, −2, 3 → 3 / 4
    assert stats.mean_difference(a, b) == 0.75
    assert stats.summarize([4.0, 1.0, 3.0, 10.0]) == {"n": 4, "mean": 4.5, "median": 3.5}
    with pytest.raises(ValueError, match="equal length"):
        stats.win_rate([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        stats.mean_difference([1.0, float("nan")], [0.0, 0.0])


def test_degenerate_bootstraps_have_point_intervals() -> None:
    # every resample of all-wins has win-rate 1 → CI [1, 1]; all ties → [½, ½]; a constant gain 2 → [2, 2]
    win = stats.win_rate_ci([2.0, 3.0, 4.0], [1.0, 1.0, 1.0], samples=500, confidence=0.95, seed=0)
    assert (win.estimate, win.low, win.high) == (1.0, 1.0, 1.0)
    tie = stats.win_rate_ci([1.0, 2.0], [1.0, 2.0], samples=500)
    assert (tie.estimate, tie.low, tie.high) == (0.5, 0.5, 0.5)
    gain = stats.mean_difference_ci([3.0, 4.0, 5.0], [1.0, 2.0, 3.0], samples=500)
    assert (gain.estimate, gain.low, gain.high) == (2.0, 2.0, 2.0)


def test_two_item_bootstrap_matches_its_enumerated_distribution() -> None:
    """Items w = (1, 0): resampling 2 of 2 with replacement gives (1,1), (1,0), (0,1), (0,0) equally
    often, so the replicate mean is 1, ½, ½, 0: P(0) = ¼, P(½) = ½, P(1) = ¼."""
    a, b = [2.0, 0.0], [1.0, 1.0]
    reps = stats.bootstrap_means(stats.win_indicator(a, b), samples=40_000, seed=3)
    assert set(np.unique(reps)) == {0.0, 0.5, 1.0}
    for value, p in ((0.0, 0.25), (0.5, 0.5), (1.0, 0.25)):
        assert abs(np.mean(reps == value) - p) < 0.01  # binomial sd ≤ 0.0025
    # 40% interval: quantiles 0.3 and 0.7 both fall on ½ (P(≤0) = ¼ < 0.3, P(≤½) = ¾ > 0.7)
    ci = stats.win_rate_ci(a, b, samples=40_000, confidence=0.4, seed=3)
    assert (ci.estimate, ci.low, ci.high) == (0.5, 0.5, 0.5)
    # 90% interval: quantiles 0.05 and 0.95 fall on 0 and 1
    ci90 = stats.win_rate_ci(a, b, samples=40_000, confidence=0.9, seed=3)
    assert (ci90.low, ci90.high) == (0.0, 1.0)


def test_prompt_bootstrap_resamples_whole_prompts_as_ratio_of_sums() -> None:
    """values (1, 0, 0) with prompts (p, q, q): sums p=1 (1 item), q=0 (2 items). Drawing 2 prompts:
    {p,p} → 2/2 = 1, {p,q} → 1/3, {q,q} → 0, with probabilities ¼, ½, ¼."""
    reps = stats.bootstrap_means([1.0, 0.0, 0.0], samples=40_000, seed=1, groups=["p", "q", "q"])
    assert np.allclose(np.unique(reps), [0.0, 1 / 3, 1.0])
    for value, p in ((0.0, 0.25), (1 / 3, 0.5), (1.0, 0.25)):
        assert abs(np.mean(np.isclose(reps, value)) - p) < 0.01
    same = stats.bootstrap_means([1.0, 0.0, 0.0], samples=100, seed=1, groups=["p", "q", "q"])
    again = stats.bootstrap_means([1.0, 0.0, 0.0], samples=100, seed=1, groups=["p", "q", "q"])
    other = stats.bootstrap_means([1.0, 0.0, 0.0], samples=100, seed=2, groups=["p", "q", "q"])
    assert np.array_equal(same, again) and not np.array_equal(same, other)


def test_percentile_interval_and_beats_rule() -> None:
    # linear quantiles of 0..100 at 0.05 and 0.95 are 5 and 95
    assert stats.percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    with pytest.raises(ValueError, match="confidence"):
        stats.percentile_interval([1.0], 1.0)
    win, gain = stats.Interval(0.6, 0.51, 0.7, 0.95), stats.Interval(0.1, 0.01, 0.2, 0.95)
    assert stats.beats(win, gain)
    assert not stats.beats(stats.Interval(0.6, 0.5, 0.7, 0.95), gain)  # lower bound must exceed ½
    assert not stats.beats(win, stats.Interval(0.1, 0.0, 0.2, 0.95))  # and the gain's must exceed 0


def _items(n_prompts: int, seeds: int, prompt_set: str = "toy", category: str = "") -> list[EvalItem]:
    return [
        EvalItem(prompt_set, f"{i:04d}", f"prompt {i}", 100 * i + j, category)
        for i in range(n_prompts)
        for j in range(seeds)
    ]


def _table() -> pd.DataFrame:
    items = _items(4, 2)  # 4 prompts × 2 seeds = 8 items
    base = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    return concat_scores(
        [
            score_rows("base", "oracle", items, base),
            score_rows("better", "oracle", items, base + 1.0),  # wins everywhere, gain 1
            score_rows("same", "oracle", items, base),  # ties everywhere
            score_rows("mixed", "oracle", items, base + np.array([1, -1, 1, -1, 1, -1, 0, 0.0])),
        ]
    )


def test_compare_every_model_against_the_baseline() -> None:
    result = compare_to_baseline(_table(), "base", samples=300, confidence=0.95, seed=0).set_index("model")
    assert sorted(result.index) == ["better", "mixed", "same"]
    better, same, mixed = result.loc["better"], result.loc["same"], result.loc["mixed"]
    assert (better["win_rate"], better["win_low"], better["win_high"]) == (1.0, 1.0, 1.0)
    assert (better["mean_gain"], better["gain_low"]) == (1.0, 1.0) and bool(better["beats"])
    assert (same["win_rate"], same["win_low"], same["win_high"], bool(same["beats"])) == (
        0.5,
        0.5,
        0.5,
        False,
    )
    # mixed: 3 wins, 3 losses, 2 ties → (3 + 1) / 8 = 0.5; gain (1−1+1−1+1−1+0+0)/8 = 0
    assert mixed["win_rate"] == 0.5 and mixed["mean_gain"] == 0.0 and not bool(mixed["beats"])
    # per prompt the pairs (+1,−1) cancel, except the last prompt (0, 0): every prompt-level win-rate
    # is ½, so resampling prompts gives exactly ½; resampling items does not
    assert (mixed["win_low"], mixed["win_high"]) == (0.5, 0.5)
    by_item = compare_to_baseline(_table(), "base", samples=300, seed=0, unit="item").set_index("model")
    assert by_item.loc["mixed", "win_low"] < 0.5 < by_item.loc["mixed", "win_high"]
    assert int(better["n_items"]) == 8 and int(better["n_prompts"]) == 4
    assert better["baseline_median"] == 4.5 and better["median"] == 5.5


def test_compare_refuses_unpaired_items_and_unknown_baseline() -> None:
    table = _table()
    with pytest.raises(ValueError, match="not paired: 0 scored only for 'better', 1 only for 'base'"):
        compare_to_baseline(
            table.drop(index=table.index[(table["model"] == "better")][:1]), "base", samples=10
        )
    with pytest.raises(KeyError, match="baseline 'sd15'"):
        compare_to_baseline(table, "sd15", samples=10)


def test_summaries_per_metric_and_per_category() -> None:
    items = _items(2, 1, "hpdv2", "anime") + _items(2, 1, "hpdv2", "photo")
    items = [
        EvalItem(it.prompt_set, f"{it.category}/{it.prompt_id}", it.prompt, it.seed, it.category)
        for it in items
    ]
    table = score_rows("base", "hps-v2.1", items, [0.2, 0.4, 0.3, 0.9])
    overall = summarize_scores(table).iloc[0]
    # mean (0.2+0.4+0.3+0.9)/4 = 0.45; median of 0.2,0.3,0.4,0.9 = 0.35
    assert (
        overall["n"] == 4
        and overall["mean"] == pytest.approx(0.45)
        and overall["median"] == pytest.approx(0.35)
    )
    per_style = summarize_scores(table, by_category=True).set_index("category")
    assert per_style.loc["anime", "mean"] == pytest.approx(0.3) and per_style.loc[
        "photo", "median"
    ] == pytest.approx(0.6)


def test_score_table_round_trip_is_atomic_and_keeps_metadata(tmp_path: Path) -> None:
    items = [EvalItem("parti", "1560", '"G I G G L E" painted', 1560, "Illustrations")] + _items(2, 1)
    table = concat_scores([score_rows("base", "clip", items, [0.25, 0.5, 0.75])])
    path = tmp_path / "scores" / "scores.parquet"
    write_scores(table, path, metadata={"scorers": {"clip": {"architecture": "ViT-H-14"}}})
    back = read_scores(path)
    assert list(back.columns) == list(SCORE_COLUMNS)
    pd.testing.assert_frame_equal(back, table)
    assert back.loc[0, "prompt"] == '"G I G G L E" painted' and back["seed"].dtype == np.int64
    assert read_score_metadata(path) == {"scorers": {"clip": {"architecture": "ViT-H-14"}}}
    write_scores(table.iloc[:1], path)  # replaces the file; no temporary file is left behind
    assert len(read_scores(path)) == 1 and sorted(p.name for p in path.parent.iterdir()) == ["scores.parquet"]
    with pytest.raises(ValueError, match="2 rows share a key"):
        write_scores(pd.concat([table, table.iloc[:1]]), tmp_path / "dup.parquet")
    assert not (tmp_path / "dup.parquet").exists()
    with pytest.raises(ValueError, match="missing columns \\['value'\\]"):
        write_scores(table.drop(columns="value"), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="2 values for 3 items"):
        score_rows("base", "clip", items, [0.1, 0.2])
