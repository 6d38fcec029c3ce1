"""Toy preference pairs: labels, ties, planted corrupt rows, the Pick-a-Pic v2 columns, the stage."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from inpo.config import DEFAULT_PARAMS, load_config
from inpo.toyworld.oracle import OracleScorer
from inpo.toyworld.pairs import SHARD_NAME, garbage_bytes, pair_seeds, preference_labels
from inpo.toyworld.prompts import heldout_prompts, training_prompts

SHIPPED = Path(__file__).resolve().parents[1] / "inpo" / "assets" / "toy-base"


def test_preference_labels_with_a_tie_margin():
    score_0 = torch.tensor([0.9, 0.5, 0.50, 0.51, 0.2])
    score_1 = torch.tensor([0.1, 0.9, 0.52, 0.50, 0.2])
    # differences 0.8, -0.4, -0.02, 0.01, 0 against margin 0.05 → win, loss, tie, tie, tie
    assert preference_labels(score_0, score_1, 0.05).tolist() == [1.0, 0.0, 0.5, 0.5, 0.5]
    # margin 0: only an exact equality is a tie
    assert preference_labels(score_0, score_1, 0.0).tolist() == [1.0, 0.0, 0.0, 1.0, 0.5]


def test_pair_seeds_are_distinct_across_pairs_and_runs():
    seeds = [s for i in range(100) for s in pair_seeds(0, i)]
    assert len(set(seeds)) == 200
    assert set(seeds).isdisjoint(s for i in range(100) for s in pair_seeds(1, i))


def test_garbage_bytes_do_not_decode():
    data = garbage_bytes(torch.Generator().manual_seed(0))
    assert data.startswith(b"\x89PNG")
    with pytest.raises(OSError):
        Image.open(io.BytesIO(data)).load()


@pytest.fixture(scope="module")
def pairs_run(tmp_path_factory) -> tuple[Path, dict, Path]:
    from inpo.stages import world_pairs

    tmp = tmp_path_factory.mktemp("pairs")
    cfg = load_config(
        DEFAULT_PARAMS,
        [
            f"toy.base.out={SHIPPED}",
            f"paths.data={tmp}",
            "toy.pairs.pairs_per_prompt=1",
            "toy.pairs.steps=4",
            "toy.pairs.tie_margin=0.05",
            "toy.pairs.corrupt=3",
            "runtime.cpu_threads=1",
        ],
    )
    grid = tmp / "grid.png"
    metadata = world_pairs.run(cfg, grid=str(grid), grid_rows=4, progress=False)
    return tmp / "world-pairs", metadata, grid


def test_pairs_stage_writes_pick_a_pic_columns(pairs_run):
    out, metadata, grid = pairs_run
    table = pq.read_table(out / SHARD_NAME)
    assert table.column_names[:5] == ["caption", "jpg_0", "jpg_1", "label_0", "label_1"]
    rows = table.to_pylist()
    assert len(rows) == metadata["pairs"] == len(training_prompts())  # one pair per training prompt
    assert {r["caption"] for r in rows} == set(training_prompts())
    assert not {r["caption"] for r in rows} & set(heldout_prompts())
    assert json.loads((out / "metadata.json").read_text()) == json.loads(json.dumps(metadata))
    assert Image.open(grid).size[1] > 4 * 16


def test_pairs_labels_follow_the_oracle_with_ties(pairs_run):
    out, metadata, _ = pairs_run
    rows = pq.read_table(out / SHARD_NAME).to_pylist()
    corrupt = set(metadata["corrupt_rows"])
    ties = 0
    for i, row in enumerate(rows):
        assert row["label_0"] + row["label_1"] == 1.0 and row["label_0"] in (0.0, 0.5, 1.0)
        delta = row["oracle_0"] - row["oracle_1"]
        expected = 0.5 if abs(delta) < 0.05 else float(delta > 0)
        assert row["label_0"] == expected, (i, row["oracle_0"], row["oracle_1"])
        ties += row["label_0"] == 0.5
        if i in corrupt:
            continue
        images = [Image.open(io.BytesIO(row[k])).convert("RGB") for k in ("jpg_0", "jpg_1")]
        assert all(img.size == (16, 16) for img in images)
        score = OracleScorer().score(images, [row["caption"]] * 2)  # labels judge exactly the stored pixels
        assert torch.allclose(score, torch.tensor([row["oracle_0"], row["oracle_1"]]))
    assert 0 < ties < len(rows) and ties == metadata["ties"]


def test_pairs_plant_the_corrupt_rows(pairs_run):
    out, metadata, _ = pairs_run
    rows = pq.read_table(out / SHARD_NAME).to_pylist()
    assert len(metadata["corrupt_rows"]) == 3
    undecodable = []
    for i, row in enumerate(rows):
        for key in ("jpg_0", "jpg_1"):
            try:
                Image.open(io.BytesIO(row[key])).load()
            except OSError:
                undecodable.append(i)
    assert undecodable == metadata["corrupt_rows"]
