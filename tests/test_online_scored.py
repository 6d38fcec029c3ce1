"""Online rounds with AI feedback on a real-architecture model (world pickapic): one round on a tiny
SD1.5 whose pairs are the policy's own samples for ``online.prompts``, labelled by a tiny PickScore and
guarded by a tiny open_clip CLIP score. The scorers' weights are random: their numbers are plumbing,
never a result."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from inpo.config import Config

from .train_helpers import WORDS, make_config, make_world

TRAIN_PROMPTS = ["a red cat", "a blue dog", "a green square"]
EVAL_PROMPTS = ["a photo of a red circle", "a blue cat"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Config:
    from inpo.testing.tiny_scorers import write_tiny_open_clip, write_tiny_pickscore

    root = tmp_path_factory.mktemp("online-scored")
    world = make_world(root)
    model, processor = write_tiny_pickscore(root / "pickscore", WORDS)
    clip = write_tiny_open_clip(root / "open_clip")
    (root / "train.txt").write_text("\n".join(TRAIN_PROMPTS) + "\n")
    (root / "eval.txt").write_text("\n".join(EVAL_PROMPTS) + "\n")
    return make_config(
        root,
        world,
        overrides=[
            f"online.prompts={root / 'train.txt'}",
            "online.rounds=1",
            "online.pairs_per_prompt=2",
            "online.guard_scorer=clip",
            "relabel.scorers={pickscore: 1.0}",
            f"eval.prompt_sets=[{root / 'eval.txt'}]",
            "eval.bootstrap_samples=50",
            f"eval.pickscore.model={model}",
            f"eval.pickscore.processor={processor}",
            f"eval.clip.architecture={clip['config']}",
            f"eval.clip.pretrained={clip['clip']}",
            "sample.steps=2",
            "sample.batch_size=4",
        ],
    )


def test_a_scored_round_samples_the_policy_labels_by_the_judge_and_trains(scored: Config) -> None:
    from evaluation.relabel import build_judges, judge_weights
    from inpo.models import load_components
    from inpo.online.scored_pairs import ROUND_SEED_STRIDE
    from inpo.sampling import sample_images, to_pil
    from inpo.stages import online

    summary = online.run(scored, progress=False)
    record = summary["rounds"][0]
    assert (Path(scored.paths.outputs) / "online" / "rounds.png").stat().st_size > 0
    pairs_dir = Path(scored.paths.outputs) / "online" / "round-1" / "pairs"
    table = pq.read_table(pairs_dir / "train-00000-of-00001.parquet").to_pydict()
    assert table["caption"] == [p for p in TRAIN_PROMPTS for _ in (0, 1)]
    assert table["seed_0"][:2] == [ROUND_SEED_STRIDE, ROUND_SEED_STRIDE + 2]
    # the images are the policy's (round 1: the base's) own samples for those seeds, PNG-lossless
    policy = load_components(scored.model)
    pixels = sample_images(
        policy,
        policy.unet,
        [table["caption"][0]] * 2,
        [table["seed_0"][0], table["seed_1"][0]],
        steps=2,
        guidance=scored.sample.guidance,
    )
    for key, image in zip(("jpg_0", "jpg_1"), to_pil(pixels)):
        stored = np.asarray(Image.open(io.BytesIO(table[key][0])).convert("RGB"))
        assert np.array_equal(stored, np.asarray(image))
    # labels: the judge's scores of exactly those images in judged units s / τ (relabel's), the winner by
    # the sign of d = (s_0 − s_1) / τ, the smoothed label p = sigmoid(d)
    (judge,) = build_judges(scored, judge_weights(scored))
    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in table["jpg_0"] + table["jpg_1"]]
    raw = judge.scorer.score(images, table["caption"] * 2).double().view(2, -1)
    assert torch.allclose(
        raw / 16.658, torch.tensor([table["score_0"], table["score_1"]], dtype=torch.float64)
    )
    d = torch.tensor(table["score_0"]) - torch.tensor(table["score_1"])
    assert table["label_0"] == torch.where(d > 0, 1.0, torch.where(d < 0, 0.0, 0.5)).tolist()
    assert table["soft_label_0"] == pytest.approx(torch.sigmoid(d).tolist())
    # the round trained on them and was judged by the labeller and the held-out guard
    assert record["labeller"] == ["pickscore"] and record["guard"] == "clip"
    assert record["pairs"]["trained_on"] == 6 - record["pairs"]["ties"]
    metrics = record["metrics"]["inpo"]
    prompt_set = "eval"  # the text file's stem
    assert 0.0 <= metrics[f"{prompt_set}/pickscore/win_rate"] <= 1.0
    assert metrics[f"{prompt_set}/clip/win_low"] <= metrics[f"{prompt_set}/clip/win_rate"]
    meta = json.loads((pairs_dir / "metadata.json").read_text())
    assert meta["labellers"][0]["name"] == "pickscore" and meta["sampler"]["steps"] == 2
    from safetensors.torch import load_file

    from inpo.models.saving import UNET_WEIGHT_NAME

    weights = load_file(str(Path(record["weights"]) / UNET_WEIGHT_NAME))
    base = policy.unet.state_dict()
    assert any(not torch.equal(weights[k], base[k]) for k in weights)  # the round moved the policy


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("online.prompts=null", "online.prompts: world 'pickapic' has no prompts of its own"),
        ("online.guard_scorer=pickscore", "online.guard_scorer: 'pickscore' labels the rounds"),
        ("online.guard_scorer=oracle_strict", "judges the toy worlds' images only"),
        ("online.method=smpo|relabel.tau={oracle: 0.1}", "relabel.tau: online.method 'smpo'"),
        ("online.prompts=missing.txt", "online.prompts: 'missing.txt' is neither a prompt set"),
    ],
)
def test_scored_rounds_refuse_what_they_cannot_run(
    scored: Config, override: str, named: str, tmp_path: Path
) -> None:
    from inpo.config import config_from_dict, to_dict
    from inpo.errors import InputError
    from inpo.online.rounds import preflight

    raw = to_dict(scored)
    cfg = config_from_dict(raw, [*override.split("|"), f"paths.outputs={tmp_path}"])
    with pytest.raises(InputError, match=named.replace("(", r"\(")):
        preflight(cfg)
    same = config_from_dict(raw, [f"online.prompts={scored.eval.prompt_sets[0]}"])
    with pytest.raises(InputError, match="also an evaluation prompt set"):
        preflight(same)


def test_lora_rounds_continue_from_the_merged_adapter(scored: Config, tmp_path: Path) -> None:
    """Round 2 trains a fresh adapter on round 1's adapter merged into the base: that merged UNet is
    round 2's start and its reference (InPO's first loss is ln 2: policy = reference)."""
    import math

    from safetensors.torch import load_file

    from inpo import layout
    from inpo.config import config_from_dict, to_dict
    from inpo.models import load_denoiser
    from inpo.models.saving import UNET_WEIGHT_NAME, load_lora_and_merge
    from inpo.online.rounds import round_configs
    from inpo.stages import online

    overrides = [
        "model.lora.enabled=true",
        "online.rounds=2",
        "online.patience=5",
        f"paths.outputs={tmp_path / 'out'}",
    ]
    cfg = config_from_dict(to_dict(scored), [*overrides, f"paths.checkpoints={tmp_path / 'ckpt'}"])
    first, second = online.run(cfg, progress=False)["rounds"]
    rdir = tmp_path / "out" / "online"
    assert first["weights"] == str(rdir / "round-1" / "eval" / "train" / "inpo" / "unet")
    assert second["start"] == first["weights"]
    expected = load_denoiser(scored.model)  # the base UNet with round 1's adapter merged, built here
    load_lora_and_merge(expected, str(rdir / "round-1" / "train" / "inpo" / "unet"))
    merged = load_file(str(Path(first["weights"]) / UNET_WEIGHT_NAME))
    assert all(torch.allclose(merged[k], v, atol=1e-6) for k, v in expected.state_dict().items())
    assert any(not torch.equal(merged[k], v) for k, v in load_denoiser(scored.model).state_dict().items())
    train_cfg, _ = round_configs(cfg, 2, first["weights"])
    steps = [json.loads(line) for line in layout.train_step_log(train_cfg, "inpo").read_text().splitlines()]
    assert steps[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert "pickscore" in "".join(second["metrics"]["inpo"])


def test_a_killed_round_resumes_its_sampling_at_the_first_missing_chunk(
    scored: Config, tmp_path: Path, monkeypatch
) -> None:
    """Pairs are sampled in chunks written whole: killed after chunk 1, the round samples only chunks
    2 and 3 and writes the same pair set as an uninterrupted run; chunks of other settings are discarded."""
    from inpo.config import config_from_dict, to_dict
    from inpo.models import load_components
    from inpo.online import scored_pairs

    cfg = config_from_dict(to_dict(scored), ["sample.batch_size=2"])  # 1 pair per batch
    monkeypatch.setattr(scored_pairs, "CHUNK_PAIRS", 2)  # 6 pairs: 3 chunks
    policy = load_components(cfg.model)
    real, calls = scored_pairs.sample_and_score, []

    def counted(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 2 and kill:
            raise KeyboardInterrupt  # killed while sampling chunk 2
        return real(*args, **kwargs)

    monkeypatch.setattr(scored_pairs, "sample_and_score", counted)
    kill = True
    with pytest.raises(KeyboardInterrupt):
        scored_pairs.write_scored_round_pairs(cfg, policy, 1, 2, tmp_path / "a" / "pairs", progress=False)
    assert sorted(p.name for p in (tmp_path / "a" / "pairs.partial").glob("chunk-*")) == [
        "chunk-00000000.parquet"
    ]
    kill, calls[:] = False, []
    scored_pairs.write_scored_round_pairs(cfg, policy, 1, 2, tmp_path / "a" / "pairs", progress=False)
    assert (
        calls == [TRAIN_PROMPTS[1:2] * 2, TRAIN_PROMPTS[2:3] * 2]
        and not (tmp_path / "a" / "pairs.partial").exists()
    )
    scored_pairs.write_scored_round_pairs(cfg, policy, 1, 2, tmp_path / "b" / "pairs", progress=False)
    resumed, whole = (
        pq.read_table(tmp_path / d / "pairs" / "train-00000-of-00001.parquet") for d in ("a", "b")
    )
    assert resumed.equals(whole)
    # a chunk sampled under other settings (here: the sampler's steps) is never reused
    kill, calls[:] = True, []
    with pytest.raises(KeyboardInterrupt):
        scored_pairs.write_scored_round_pairs(cfg, policy, 1, 2, tmp_path / "c" / "pairs", progress=False)
    other = config_from_dict(to_dict(cfg), ["sample.steps=3"])
    kill, calls[:] = False, []
    scored_pairs.write_scored_round_pairs(other, policy, 1, 2, tmp_path / "c" / "pairs", progress=False)
    assert len(calls) == 3
