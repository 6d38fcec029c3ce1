"""World toy-mixed: the weak base's flaws, imperfect renders, noisy Bradley–Terry labels, the pair maker."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from inpo.config import DEFAULT_PARAMS, WORLD_BASES, ConfigError, load_config
from inpo.toyworld import flaws
from inpo.toyworld.base import Flawed, draw_batch
from inpo.toyworld.mixed import calibrate_labels, draw_labels, label_statistics, noiseless_labels
from inpo.toyworld.prompts import heldout_prompts, training_prompts
from inpo.toyworld.world import parse_prompt, random_scenes

SHIPPED = Path(__file__).resolve().parents[1] / "inpo" / "assets" / "toy-base"


def test_blur_keeps_flat_images_flat_and_softens_an_edge():
    flat = torch.full((1, 3, 5, 5), 0.3)
    assert torch.allclose(flaws.blur(flat, 2), flat)
    step = torch.zeros(1, 1, 1, 4)
    step[..., 2:] = 1.0  # 0 0 | 1 1
    # one horizontal [1,2,1]/4 pass with replicate padding: 0, 0.25, 0.75, 1 (the vertical pass is flat)
    assert flaws.blur(step, 1).flatten().tolist() == [0.0, 0.25, 0.75, 1.0]


def test_grey_pull_and_shrink_by_hand():
    x = torch.tensor([0.0, 1.0, 0.5])
    assert torch.allclose(flaws.pull_to_grey(x, 0.3), torch.tensor([0.15, 0.85, 0.5]))
    scenes = random_scenes(["a red circle on a blue background"] * 3, 16, torch.Generator().manual_seed(0))
    small = flaws.shrink(scenes, 0.7)
    assert [s.r for s in small] == [max(1, round(0.7 * s.r)) for s in scenes]
    assert [(s.cx, s.cy) for s in small] == [(s.cx, s.cy) for s in scenes]


def test_wrong_captions_stay_training_prompts_and_never_name_the_background():
    prompts = training_prompts()
    variants = flaws.wrong_colour_variants(prompts)
    heldout = set(heldout_prompts())
    for prompt, options in zip(prompts, variants):
        colour, shape, background = parse_prompt(prompt)
        for i in options:
            c, s, b = parse_prompt(prompts[i])
            assert (s, b) == (shape, background) and c not in (colour, background)
            assert prompts[i] not in heldout
    idx = torch.arange(len(prompts))
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(flaws.wrong_captions(idx, variants, 0.0, gen), idx)
    changed = flaws.wrong_captions(idx, variants, 1.0, gen)
    assert all((changed[i] != i) == bool(variants[i]) for i in range(len(prompts)))


def test_imperfect_renders_carry_one_imperfection_each():
    prompts = training_prompts()[:60]
    images, kinds = flaws.imperfect_renders(prompts, 16, 0.2, torch.Generator().manual_seed(1))
    assert images.shape == (60, 3, 16, 16) and set(kinds) == set(flaws.IMPERFECTIONS)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    palette_values = {v / 255 for rgb in flaws.COLOURS.values() for v in rgb}
    for image, kind in zip(images, kinds):
        values = set(torch.unique(image).tolist())
        exact = all(any(abs(v - p) < 1e-6 for p in palette_values) for v in values)
        assert exact == (kind == "off_size"), kind  # only the off-size renders keep palette colours


def test_flawed_batches_keep_the_shipped_recipes_data_stream():
    cfg = load_config(DEFAULT_PARAMS)
    prompts = training_prompts()
    table = torch.arange(len(prompts) + 1).view(-1, 1)
    plain = draw_batch(prompts, table, cfg.toy.base, 16, torch.Generator().manual_seed(5))
    flawed = Flawed(cfg.toy.mixed, flaws.wrong_colour_variants(prompts), torch.Generator().manual_seed(6))
    bad = draw_batch(prompts, table, cfg.toy.base, 16, torch.Generator().manual_seed(5), flawed)
    assert torch.equal(plain[2], bad[2]) and torch.equal(plain[3], bad[3])  # timesteps and noise
    assert not torch.equal(plain[0], bad[0])  # the renders carry the flaws
    x0 = (bad[0] + 1) / 2
    assert float(x0.max()) <= 0.85 + 1e-6 and float(x0.min()) >= 0.15 - 1e-6  # 30% toward grey
    differ = (plain[1] != bad[1]).float().mean()
    assert 0.0 < float(differ) < 0.3  # about 10% of captions name a wrong colour (caption dropout aside)


def test_calibrated_labels_hit_the_tie_rate_and_the_agreement():
    delta = torch.linspace(-0.5, 0.5, 2001, dtype=torch.float64)
    delta[1000] = 0.0  # linspace's middle is only nearly 0
    band, temperature = calibrate_labels(delta, 0.12, 0.775)
    gap = delta.abs()
    assert float((gap < band).double().mean()) == pytest.approx(0.12, abs=2e-3)
    kept = gap[gap >= band]
    assert float(torch.sigmoid(kept / temperature).mean()) == pytest.approx(0.775, abs=1e-6)
    noiseless = noiseless_labels(delta)
    assert noiseless[0] == 0.0 and noiseless[-1] == 1.0 and noiseless[1000] == 0.5
    labels = draw_labels(delta, band, temperature, torch.Generator().manual_seed(0))
    assert torch.all(labels[gap < band] == 0.5) and torch.all(labels[gap >= band] != 0.5)
    stats = label_statistics(delta, labels, noiseless)
    assert stats["tie_rate"] == pytest.approx(0.12, abs=2e-3)
    assert stats["agreement"] == pytest.approx(0.775, abs=0.03)  # a draw of ~1760 labels


def test_draw_labels_by_hand():
    delta = torch.tensor([0.3, -0.3, 0.01, 0.0], dtype=torch.float64)
    # a near-zero temperature is the noiseless label outside the band
    assert draw_labels(delta, 0.05, 1e-9, torch.Generator().manual_seed(0)).tolist() == [1.0, 0.0, 0.5, 0.5]


def test_world_toy_mixed_is_one_config_value():
    cfg = load_config(DEFAULT_PARAMS, ["world=toy-mixed"])
    assert cfg.model.pretrained == cfg.toy.mixed.base_out == "inpo/assets/toy-weak-base"
    assert load_config(DEFAULT_PARAMS).model.pretrained == "inpo/assets/toy-base"
    with pytest.raises(ConfigError, match="this world has none"):
        _ = load_config(DEFAULT_PARAMS, ["world=pickapic"]).model.base
    from inpo.worlds import WORLDS

    for name, world in WORLDS.items():  # the config's table agrees with every world's base_dir
        if name in WORLD_BASES:
            world_cfg = load_config(DEFAULT_PARAMS, [f"world={name}"])
            assert world.base_dir(world_cfg) == world_cfg.model.pretrained
        else:
            assert (
                world.base_dir(load_config(DEFAULT_PARAMS, [f"world={name}", "model.pretrained=x"])) is None
            )
    assert set(WORLD_BASES) <= set(WORLDS)


@pytest.fixture(scope="module")
def mixed_pairs(tmp_path_factory) -> tuple[Path, dict]:
    from inpo.stages import world_pairs

    tmp = tmp_path_factory.mktemp("mixed")
    cfg = load_config(
        DEFAULT_PARAMS,
        [
            "world=toy-mixed",
            f"toy.base.out={SHIPPED}",
            f"toy.mixed.base_out={SHIPPED}",  # the mechanics, not the quality: one base plays both
            f"paths.data={tmp}",
            "toy.pairs.pairs_per_prompt=1",
            "toy.pairs.steps=3",
            "toy.pairs.corrupt=2",
            "runtime.cpu_threads=1",
        ],
    )
    meta = world_pairs.run(cfg, progress=False)
    return tmp / "world-pairs", meta


def test_mixed_pairs_have_provenance_and_calibrated_labels(mixed_pairs):
    folder, meta = mixed_pairs
    rows = pq.read_table(folder / "train-00000-of-00001.parquet").to_pylist()
    assert len(rows) == meta["pairs"] == 108 and meta["world"] == "toy-mixed"
    kinds = {r["generator_0"] for r in rows} | {r["generator_1"] for r in rows}
    assert kinds == {"weak", "strong", "renders"}
    assert any(r["generator_0"] != r["generator_1"] for r in rows)
    for r in rows:
        assert (r["imperfection_0"] != "") == (r["generator_0"] == "renders")
        delta = r["oracle_0"] - r["oracle_1"]
        assert r["label_noiseless"] == (1.0 if delta > 0 else 0.0 if delta < 0 else 0.5)
        assert r["label_0"] + r["label_1"] == 1.0
    labels = meta["labels"]
    assert labels["tie_rate"] == pytest.approx(0.12, abs=0.02)
    ties = [r for r in rows if r["label_0"] == 0.5]
    assert all(abs(r["oracle_0"] - r["oracle_1"]) < labels["tie_band"] for r in ties)
    assert set(meta["generators"]) == kinds
    assert json.loads((folder / "metadata.json").read_text())["labels"] == labels


def test_prepare_refuses_another_worlds_pairs(mixed_pairs):
    from inpo.data.checks import check_data_source as check_data
    from inpo.errors import InputError

    folder, _ = mixed_pairs
    cfg = load_config(DEFAULT_PARAMS, [f"data.source={folder}", "world=toy"])
    with pytest.raises(InputError, match="holds world 'toy-mixed'"):
        check_data(cfg)
    check_data(load_config(DEFAULT_PARAMS, [f"data.source={folder}", "world=toy-mixed"]))
