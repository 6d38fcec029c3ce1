"""`inpo relabel` (AI feedback, paper §5.3): labels follow the scorer, images stay as they were, and
the new pair set goes through `inpo prepare`."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from evaluation.relabel import Judge, ai_labels, relabel_pairs
from inpo.config import DEFAULT_PARAMS, Config, load_config


class MeanBrightness:
    """A deterministic scorer: the mean of the image's RGB values (prompt ignored)."""

    name = "brightness"

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        assert len(images) == len(prompts)
        return torch.tensor([float(np.asarray(img, dtype=np.float64).mean()) for img in images])

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "programmatic"}


def brightness(data: bytes) -> float:
    with Image.open(io.BytesIO(data)) as img:
        return float(np.asarray(img.convert("RGB"), dtype=np.float64).mean())


def prepared(source: Path, outputs: Path) -> Config:
    from inpo.stages import prepare

    cfg = load_config(DEFAULT_PARAMS, [f"data.source={source}", f"paths.outputs={outputs}"])
    prepare.run(cfg, progress=False)
    return cfg


def test_ai_labels_hand_values() -> None:
    # d = 2, −2, −0.125, 0.25 (exact in binary): above the margin 0.25 → 1, below −0.25 → 0, within → ½
    got = ai_labels(np.array([3.0, 1.0, 2.0, 1.25]), np.array([1.0, 3.0, 2.125, 1.0]), tie_margin=0.25)
    assert got.tolist() == [1.0, 0.0, 0.5, 0.5]
    assert ai_labels(np.array([1.0]), np.array([1.0])).tolist() == [0.5]  # margin 0: exact equality ties


def test_relabel_follows_the_scorer_keeps_images_and_passes_prepare(tmp_path: Path) -> None:
    from inpo.data import read_pair_index, write_pickapic_fixture

    fixture = write_pickapic_fixture(tmp_path / "src", n_rows=16, n_ties=3, n_corrupt=2, n_shards=2)
    cfg = prepared(fixture.root, tmp_path / "out")
    index = read_pair_index(tmp_path / "out" / "prepare" / "pairs.parquet")
    n = len(index)
    assert n == 16 - 3 - 1  # 3 ties dropped, 2 corrupt images in one pair → 1 pair dropped

    summary = relabel_pairs(
        index.path, cfg.data, [Judge(MeanBrightness())], tmp_path / "relabelled", rows_per_shard=5, progress=False
    )
    shards = sorted((tmp_path / "relabelled").glob("*.parquet"))
    assert [p.name for p in shards] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]  # ceil(12 / 5)
    table = pa.concat_tables([pq.read_table(p) for p in shards]).to_pylist()
    assert [r["pair_index"] for r in table] == list(range(n))
    src = {name: pq.read_table(fixture.root / name).to_pylist() for name in index.shards}
    changed = 0
    for r in table:
        i = r["pair_index"]
        original = src[index.shards[index.shard_id[i]]][index.row[i]]
        jpg_0, jpg_1 = (
            original[c] if isinstance(original[c], bytes) else original[c]["bytes"]
            for c in ("jpg_0", "jpg_1")
        )
        assert (r["jpg_0"], r["jpg_1"]) == (jpg_0, jpg_1)  # bytes unchanged, original order
        expected = 1.0 if brightness(jpg_0) > brightness(jpg_1) else 0.0  # random images: never equal
        assert (r["label_0"], r["label_1"]) == (expected, 1.0 - expected)
        assert r["original_label_0"] == original["label_0"] and r["caption"] == original["caption"]
        changed += expected != original["label_0"]
    assert summary["pairs"] == n and summary["winner_changed"] == changed
    assert (
        json.loads((tmp_path / "relabelled" / "summary.json").read_text())["scorer"]["name"] == "brightness"
    )

    # the new pair set is a valid `inpo prepare` source; its winners are the scorer's
    prepared(tmp_path / "relabelled", tmp_path / "out2")
    new_index = read_pair_index(tmp_path / "out2" / "prepare" / "pairs.parquet")
    assert len(new_index) == n
    assert new_index.winner.tolist() == [0 if r["label_0"] == 1.0 else 1 for r in table]


def write_toy_pairs(folder: Path) -> list[str]:
    """4 pairs: jpg_0 renders its prompt, jpg_1 renders another prompt; the stored labels wrongly pick jpg_1."""
    from inpo.sampling import to_uint8
    from inpo.toyworld.pairs import png_bytes
    from inpo.toyworld.world import Scene, render

    prompts = [
        "a red circle on a blue background",
        "a green square on a white background",
        "a black cross on a yellow background",
        "a white triangle on a red background",
    ]
    good = [
        Scene("circle", "red", "blue", 8, 8, 5),
        Scene("square", "green", "white", 7, 8, 4),
        Scene("cross", "black", "yellow", 8, 7, 5),
        Scene("triangle", "white", "red", 8, 8, 6),
    ]
    bad = [
        Scene("square", "yellow", "black", 8, 8, 5),
        Scene("circle", "blue", "red", 8, 8, 4),
        Scene("triangle", "green", "white", 8, 8, 5),
        Scene("cross", "red", "green", 8, 8, 6),
    ]
    # render: [0, 1]; to_uint8 takes [-1, 1] and gives uint8 [N, 3, H, W], what png_bytes takes per image
    pix_good, pix_bad = (to_uint8(render(s, 16) * 2 - 1) for s in (good, bad))
    rows = {
        "caption": prompts,
        "jpg_0": [png_bytes(p) for p in pix_good],
        "jpg_1": [png_bytes(p) for p in pix_bad],
        "label_0": [0.0] * 4,
        "label_1": [1.0] * 4,
    }
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pydict(rows), folder / "train-00000-of-00001.parquet")
    return prompts


def test_relabel_stage_with_the_toy_oracle_fixes_wrong_labels(tmp_path: Path) -> None:
    """``inpo relabel --scorer oracle`` (scorer from the registry) picks jpg_0, the rendered prompt, every time."""
    from inpo.stages import relabel

    write_toy_pairs(tmp_path / "src")
    cfg = prepared(tmp_path / "src", tmp_path / "out")
    summary = relabel.run(cfg, scorer="oracle", progress=False)
    out = tmp_path / "out" / "relabel" / "oracle"
    table = pq.read_table(out / "train-00000-of-00001.parquet")
    assert table["label_0"].to_pylist() == [1.0] * 4 and table["label_1"].to_pylist() == [0.0] * 4
    assert all(s > 0.9 for s in table["score_0"].to_pylist())  # a rendered scene of the prompt scores ~1
    assert summary["winner_changed"] == 4 and summary["agreement_with_original"] == 0.0


def test_a_failing_relabel_leaves_no_output(tmp_path: Path) -> None:
    from inpo.data import write_pickapic_fixture
    from inpo.stages import relabel

    fixture = write_pickapic_fixture(tmp_path / "src", n_rows=6, n_ties=1, n_corrupt=0, n_shards=1)
    cfg = prepared(fixture.root, tmp_path / "out")
    with pytest.raises(ValueError):  # the oracle cannot read these (non-toy, non-square) pairs
        relabel.run(cfg, scorer="oracle", progress=False)
    assert not (tmp_path / "out" / "relabel" / "oracle").exists()  # nothing half-written


def test_relabel_writes_smoothed_labels_for_one_judge_and_a_weighted_mix(tmp_path: Path) -> None:
    """soft_label_0 = sigmoid(d) with d = Σ_k w_k (s_k0 − s_k1) / τ_k; `inpo prepare` carries it into
    the pair index, where SmPO reads the winner's p."""
    from inpo.data import read_pair_index, write_pickapic_fixture
    from inpo.data.dataset import PairDataset

    class Darkness(MeanBrightness):
        name = "darkness"

        def score(self, images, prompts):
            return 255.0 - super().score(images, prompts)

    fixture = write_pickapic_fixture(tmp_path / "src", n_rows=8, n_ties=1, n_corrupt=0, n_shards=1)
    cfg = prepared(fixture.root, tmp_path / "out")
    index_path = tmp_path / "out" / "prepare" / "pairs.parquet"
    one = relabel_pairs(index_path, cfg.data, [Judge(MeanBrightness(), 1.0, 4.0)], tmp_path / "one", progress=False)
    rows = pq.read_table(tmp_path / "one" / "train-00000-of-00001.parquet").to_pylist()
    for r in rows:
        d = (brightness(r["jpg_0"]) - brightness(r["jpg_1"])) / 4.0
        assert r["soft_label_0"] == pytest.approx(1 / (1 + math.exp(-d)), rel=1e-5)  # float32 scores
        assert r["label_0"] == (1.0 if d > 0 else 0.0)
    assert one["soft_labels"] and one["judges"][0]["tau"] == 4.0
    # brightness at weight 3, τ 2 and darkness (= −brightness) at weight 1, τ 1: d = (3/2 − 1) Δ
    relabel_pairs(
        index_path, cfg.data, [Judge(MeanBrightness(), 3.0, 2.0), Judge(Darkness(), 1.0, 1.0)], tmp_path / "mix", progress=False
    )
    mixed = pq.read_table(tmp_path / "mix" / "train-00000-of-00001.parquet").to_pylist()
    for r in mixed:
        d = 0.5 * (brightness(r["jpg_0"]) - brightness(r["jpg_1"]))
        assert r["soft_label_0"] == pytest.approx(1 / (1 + math.exp(-d)), rel=1e-5)  # float32 scores
    with pytest.raises(ValueError, match="relabel.tau: no temperature for darkness"):
        relabel_pairs(index_path, cfg.data, [Judge(MeanBrightness(), 1.0, 1.0), Judge(Darkness())], tmp_path / "x")
    cfg2 = prepared(tmp_path / "one", tmp_path / "out2")
    index = read_pair_index(tmp_path / "out2" / "prepare" / "pairs.parquet")
    assert index.soft_label_0 is not None
    p_w = PairDataset(index.path, cfg2.data, seed=0).pair_fields(list(range(len(index))), ["soft_label_w"])["soft_label_w"]
    assert bool((p_w > 0.5).all())  # the judge's winner is the winner: its p is above ½
