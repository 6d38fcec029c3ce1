"""`inpo score` and `inpo report` on a tiny toy setup, and the statistics they print against hand values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from evaluation.prompts import EvalItem
from evaluation.report import build_report, display_scale, winrates_json
from evaluation.score import comparison, flat_metrics
from evaluation.score_table import SCORE_COLUMNS, read_score_metadata, read_scores, score_rows
from inpo.config import DEFAULT_PARAMS, Config, load_config
from inpo.metric_keys import metric_key
from inpo.toyworld.world import VOCABULARY

WORDS = list(VOCABULARY)  # the toy world's 13 words: a tiny word-level tokenizer
TOY_PROMPTS = 12  # inpo.toyworld.prompts.heldout_prompts()
SEEDS = 2


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """base + one 'dpo' UNet, generated on the toy held-out prompts (12 prompts × 2 seeds), then scored."""
    from inpo.stages import generate, score
    from inpo.testing.tiny_models import write_tiny_pixel

    root = tmp_path_factory.mktemp("pipeline")
    write_tiny_pixel(root / "base", seed=0, words=WORDS)
    write_tiny_pixel(root / "other", seed=1, words=WORDS)
    shutil.copytree(root / "other" / "unet", root / "outputs" / "train" / "dpo" / "unet")
    cfg = load_config(
        DEFAULT_PARAMS,
        [
            f"model.pretrained={root / 'base'}",
            f"paths.outputs={root / 'outputs'}",
            "methods=[dpo]",
            "eval.prompt_sets=[toy]",
            f"eval.seeds_per_prompt={{toy: {SEEDS}}}",
            "eval.scorers=[oracle]",
            "eval.bootstrap_samples=200",
            "sample.steps=2",
        ],
    )
    generate.run(cfg, progress=False)
    score.run(cfg, progress=False)
    return cfg


def test_score_stage_writes_the_per_image_table_and_flat_metrics(pipeline: Config) -> None:
    out = Path(pipeline.paths.outputs) / "score"
    table = read_scores(out / "scores.parquet")
    assert tuple(table.columns) == SCORE_COLUMNS
    assert sorted(table["metric"].unique()) == ["oracle", "prompt_following"]  # scorer + toy guard
    assert len(table) == 2 * 2 * TOY_PROMPTS * SEEDS  # models × metrics × items
    assert set(table[table["metric"] == "prompt_following"]["value"]) <= {0.0, 1.0}
    meta = read_score_metadata(out / "scores.parquet")
    assert meta["models"] == ["base", "dpo"] and meta["baseline"] == "base"
    assert meta["scorers"]["oracle"]["kind"] == "programmatic"
    assert json.loads((out / "scorers.json").read_text())["oracle"]["sigma"] == 0.25

    metrics = json.loads((out / "metrics.json").read_text())
    base = table[(table["model"] == "base") & (table["metric"] == "oracle")]["value"].to_numpy()
    assert metrics["base/toy/oracle/median"] == pytest.approx(float(np.median(base)))
    assert metrics["base/toy/oracle/n"] == TOY_PROMPTS * SEEDS
    win = metrics["dpo/toy/oracle/win_rate"]
    assert metrics["dpo/toy/oracle/win_low"] <= win <= metrics["dpo/toy/oracle/win_high"]
    assert "base/toy/oracle/win_rate" not in metrics  # no win-rate of the baseline over itself
    assert metrics["base/toy/diversity"] > 0  # random tiny UNets: seeds give different images
    assert all(isinstance(v, float) for v in metrics.values())  # numbers only (dvc metrics, MLflow)


def test_report_renders_tables_charts_grid_and_winrates(pipeline: Config) -> None:
    from inpo.stages import report

    paths = report.run(pipeline, grid_prompts=3, grid_seeds=2)
    out = Path(pipeline.paths.outputs) / "report"
    md = (out / "report.md").read_text()
    for model in ("base", "dpo"):
        assert f"| {model} |" in md
    assert "win-rate over base" in md and "oracle" in md and "diversity" in md
    charts = sorted(p.name for p in (out / "charts").glob("*.png"))
    assert charts == ["grid_toy.png", "scores_toy.png", "winrates_toy.png"]
    for name in charts:
        with Image.open(out / "charts" / name) as img:
            img.load()
            assert img.width > 100 and img.height > 100
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "src='charts" not in page  # self-contained
    wr = json.loads((out / "winrates.json").read_text())
    entry = wr["dpo"]["toy"]["oracle"]
    assert entry["n_items"] == TOY_PROMPTS * SEEDS and entry["n_prompts"] == TOY_PROMPTS
    assert entry["win_low"] <= entry["win_rate"] <= entry["win_high"]
    assert paths["html"] == out / "report.html"


def _items(n: int) -> list[EvalItem]:
    return [EvalItem("parti", f"{i:04d}", f"prompt {i}", i) for i in range(n)]


def test_win_rates_gains_and_display_scale_match_hand_values(tmp_path: Path) -> None:
    cfg = load_config(DEFAULT_PARAMS, ["eval.bootstrap_samples=100"])
    a, b = [1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 5.0, 1.0]
    hps_a, hps_b = [0.30, 0.28, 0.27, 0.26], [0.25, 0.25, 0.25, 0.25]
    table = pd.concat(
        [
            score_rows("inpo", "aesthetic", _items(4), a),
            score_rows("base", "aesthetic", _items(4), b),
            score_rows("inpo", "hps-v2.1", _items(4), hps_a),
            score_rows("base", "hps-v2.1", _items(4), hps_b),
        ],
        ignore_index=True,
    )
    metrics = flat_metrics(table, cfg.eval, guards={})
    # wins per prompt: 1 > 0 → 1, 2 = 2 → ½, 3 < 5 → 0, 4 > 1 → 1; (1 + ½ + 0 + 1) / 4
    assert metrics["inpo/parti/aesthetic/win_rate"] == 0.625
    # gains 1, 0, −2, 3 → mean 0.5
    assert metrics["inpo/parti/aesthetic/mean_gain"] == pytest.approx(0.5)
    assert metrics["inpo/parti/aesthetic/median"] == 2.5 and metrics["base/parti/aesthetic/median"] == 1.5
    assert metrics["inpo/parti/hps-v2.1/win_rate"] == 1.0  # every HPS of inpo is above 0.25
    assert metric_key("m", "my set/x", "clip", "median") == "m/my set_x/clip/median"
    assert display_scale("hps-v2.1") == display_scale("clip") == 100.0 and display_scale("pickscore") == 1.0

    meta = {"models": ["base", "inpo"], "scorers": {"aesthetic": {"head": "head.pth"}, "hps-v2.1": {}}}
    build_report(table, meta, tmp_path, cfg.eval)
    md = (tmp_path / "report.md").read_text()
    # HPS medians ×100: inpo median(0.30, 0.28, 0.27, 0.26) = 0.275 → 27.500; base 25.000
    assert "| inpo | 2.500 | 27.500 |" in md  # aesthetic median(1, 2, 3, 4) = 2.5
    assert "| base | 1.500 | 25.000 |" in md
    assert "| inpo | 62.5 [" in md  # aesthetic win-rate in %
    assert "head=head.pth" in md  # the weights each scorer loaded are stated
    assert winrates_json(comparison(table, cfg.eval))["inpo"]["parti"]["aesthetic"]["win_rate"] == 0.625
    assert not (tmp_path / "charts" / "grid_parti.png").exists()  # no manifest given: no grid
