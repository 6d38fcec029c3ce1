"""`inpo prepare`, `inpo sft`, `inpo train` end to end through the CLI on the toy world: the preference
stage starts from the SFT stage's weights (a LoRA adapter merged at load, or a full UNet), as policy and
reference."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from inpo.cli import main

TOY_BASE = Path(__file__).resolve().parents[1] / "inpo" / "assets" / "toy-base"


@pytest.fixture(scope="module")
def fixture(tmp_path_factory) -> Path:
    from inpo.data.fixtures import write_pickapic_fixture

    root = tmp_path_factory.mktemp("stages") / "pairs"
    write_pickapic_fixture(root, n_rows=12, n_ties=2, n_corrupt=2, n_shards=2)
    return root


def _cli(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


def _first_step(out: Path, method: str) -> dict:
    return json.loads((out / "train" / method / "metrics.jsonl").read_text().splitlines()[0])


def _pipeline(root: Path, fixture: Path, sft: bool, lora: bool) -> Path:
    overrides = [
        f"model.pretrained={TOY_BASE}",
        f"data.source={fixture}",
        f"paths.outputs={root / 'outputs'}",
        f"paths.checkpoints={root / 'checkpoints'}",
        "train.pairs_per_device=2",
        "train.max_steps=2",
        "train.learning_rate=1e-4",
        f"sft.enabled={str(sft).lower()}",
        "sft.max_steps=2",
        "sft.learning_rate=1e-2",  # a visible SFT change in 2 steps
        f"model.lora.enabled={str(lora).lower()}",
        "model.lora.rank=2",
    ]
    _cli("prepare", *overrides)
    _cli("sft", *overrides)
    _cli("train", "--method", "dpo", *overrides)
    return root / "outputs"


@pytest.mark.parametrize("lora", [True, False])
def test_train_stage_starts_from_the_sft_weights(tmp_path, fixture, lora):
    with_sft = _pipeline(tmp_path / "sft", fixture, sft=True, lora=lora)
    without = _pipeline(tmp_path / "base", fixture, sft=False, lora=lora)

    summary = json.loads((with_sft / "sft" / "summary.json").read_text())
    assert summary["enabled"] is True and summary["steps"] == 2
    weights = "pytorch_lora_weights.safetensors" if lora else "diffusion_pytorch_model.safetensors"
    assert (with_sft / "sft" / "unet" / weights).exists()
    assert json.loads((without / "sft" / "summary.json").read_text()) == {"enabled": False}

    a, b = _first_step(with_sft, "dpo"), _first_step(without, "dpo")
    # Step 0: the policy equals its reference in both runs (after SFT both are the SFT model), so z = 0 and
    # the loss is ln 2; a policy from SFT against the plain base as reference would not give ln 2.
    assert a["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert b["loss"] == pytest.approx(math.log(2), abs=1e-5)
    # The same pairs, timesteps and noise: only the starting weights differ, so the errors differ.
    assert not math.isclose(a["err_ref_w"], b["err_ref_w"], rel_tol=1e-4)
    assert not math.isclose(a["err_ref_l"], b["err_ref_l"], rel_tol=1e-4)
    for out in (with_sft, without):
        assert json.loads((out / "train" / "dpo" / "summary.json").read_text())["steps"] == 2
        assert (out / "train" / "dpo" / "validation" / "step-000002.png").exists()
