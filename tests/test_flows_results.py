"""The main job's printed table reads the score and report files through the modules that write them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.report import read_winrates
from evaluation.score import WIN_STATS, read_flat_metrics, winrates_from_flat_metrics
from flows.results import format_table, result_rows
from inpo.metric_keys import metric_key

WIN = dict(zip(WIN_STATS, (0.75, 0.6, 0.9, 0.125, 0.05, 0.2)))


def _metrics() -> dict[str, float]:
    out = {metric_key("dpo", "toy", "oracle", stat): value for stat, value in WIN.items()}
    out[metric_key("dpo", "toy", "oracle", "median")] = 0.5
    out[metric_key("base", "toy", "oracle", "median")] = 0.25
    out[metric_key("base", "toy", "oracle", "win_rate")] = 0.5  # the baseline's own row is not a result
    out[metric_key("dpo", "toy", "diversity")] = 0.3  # a guard spread: three parts, not a win stat
    return out


def test_flat_metrics_nest_like_the_reports_winrates():
    nested = winrates_from_flat_metrics(_metrics(), "base")
    assert nested == {"dpo": {"toy": {"oracle": WIN}}}
    rows = result_rows(nested, _metrics(), "base", ["dpo"])
    assert rows == [("dpo", "toy", "oracle", "75.0%", "[60.0, 90.0]", "+0.125", "[+0.05, +0.2]", "0.5", "0.25")]
    table = format_table(rows)
    assert table.splitlines()[0].split()[:3] == ["method", "prompts", "metric"]


def test_the_readers_refuse_files_of_another_shape(tmp_path: Path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(_metrics()))
    assert read_flat_metrics(metrics) == _metrics()
    metrics.write_text(json.dumps({"dpo/toy/oracle/win_rate": "high"}))
    with pytest.raises(ValueError, match="flat JSON object of numbers"):
        read_flat_metrics(metrics)
    winrates = tmp_path / "winrates.json"
    winrates.write_text(json.dumps({"dpo": {"toy": {"oracle": WIN}}}))
    assert read_winrates(winrates)["dpo"]["toy"]["oracle"] == WIN
    winrates.write_text(json.dumps({"dpo": [1, 2]}))
    with pytest.raises(ValueError, match="expected"):
        read_winrates(winrates)


def test_a_results_row_missing_a_bound_is_an_error():
    nested = {"dpo": {"toy": {"oracle": {k: v for k, v in WIN.items() if k != "win_low"}}}}
    with pytest.raises(ValueError, match="lack one of"):
        result_rows(nested, {}, "base", ["dpo"])
