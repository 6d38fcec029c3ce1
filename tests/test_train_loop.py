"""The training loop on tiny SD1.5 / SDXL models built in code, saved and loaded through the real loader."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from inpo.train.loop import NonFiniteError, train
from tests.train_helpers import make_config, make_world, read_losses, run_spec, state


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return root, make_world(root)


METHOD_CASES = [
    ("inpo", ["method.inpo.inversion.mode=corrected"]),
    ("inpo", ["method.inpo.inversion.mode=faithful"]),
    ("inpo", ["method.inpo.inversion.model=reference", "method.inpo.inversion.guidance=2.0"]),
    ("dpo", []),
    ("sft", []),
    ("kto", []),
]


@pytest.mark.parametrize(("method", "overrides"), METHOD_CASES)
def test_two_steps_change_every_trainable_parameter_and_keep_the_reference(
    world, tmp_path, method, overrides
):
    root, paths = world
    cfg = make_config(tmp_path, paths, overrides=overrides)
    from inpo.models import load_components

    base = state(load_components(cfg.model).unet)
    result = train(run_spec(cfg, method))
    after = state(result.policy)
    unchanged = [k for k in base if torch.equal(base[k], after[k])]
    assert unchanged == [], f"{method}: parameters not updated: {unchanged[:5]}"
    ref = state(result.reference.unet)
    assert all(torch.equal(base[k], ref[k]) for k in base), "the reference changed"
    losses = read_losses(result.metrics_path)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert (result.weights_dir / "diffusion_pytorch_model.safetensors").exists()


def test_first_preference_loss_is_ln2_when_policy_equals_reference(world, tmp_path):
    """At step 0 policy == reference, so z = 0 and loss = softplus(0) = ln 2 (up to fp32 noise)."""
    root, paths = world
    cfg = make_config(tmp_path, paths, overrides=["train.max_steps=1"])
    for method in ("dpo", "inpo"):
        result = train(run_spec(cfg, method))
        first = read_losses(result.metrics_path)[0]
        assert first == pytest.approx(math.log(2), abs=1e-5), method


def test_lora_trains_only_the_adapter(world, tmp_path):
    root, paths = world
    cfg = make_config(tmp_path, paths, overrides=["model.lora.enabled=true", "model.lora.rank=2"])
    from inpo.models import load_components

    base = state(load_components(cfg.model).unet)
    result = train(run_spec(cfg, "inpo"))
    after = state(result.policy)
    lora_keys = [k for k in after if "lora_" in k]
    assert lora_keys, "no adapter parameters"
    changed = [
        k for k in lora_keys if "lora_B" in k and not torch.equal(after[k], torch.zeros_like(after[k]))
    ]
    assert changed, "the adapter did not move"
    base_keys = {k.replace(".base_layer", ""): k for k in after if "lora_" not in k}
    for plain, wrapped in base_keys.items():
        assert torch.equal(base[plain], after[wrapped]), f"base weight {plain} changed"
    assert (result.weights_dir / "pytorch_lora_weights.safetensors").exists()


def test_accumulation_1x2_equals_2x1(world, tmp_path):
    """Two micro-batches of one pair accumulate to the same update as one micro-batch of two pairs."""
    root, paths = world
    common = ["train.max_steps=2", "method.inpo.inversion.eta=0.1", "train.learning_rate=1e-4"]
    common += ["method.inpo.beta=100", "method.dpo.beta=100"]  # keep step 2 in a well-conditioned regime
    # Adam divides by sqrt(v) + eps: with eps 1e-8 a parameter whose gradient is ~1e-8 moves by a full lr
    # step on rounding noise alone (summation order differs between layouts); eps 1e-3 keeps the update
    # proportional to the gradient there, so the comparison tests accumulation, not noise amplification
    common += ["train.adam_eps=1e-3"]
    a = make_config(
        tmp_path / "a", paths, overrides=[*common, "train.pairs_per_device=2", "train.grad_accum=1"]
    )
    b = make_config(
        tmp_path / "b", paths, overrides=[*common, "train.pairs_per_device=1", "train.grad_accum=2"]
    )
    for method in ("inpo", "dpo", "sft"):
        ra, rb = train(run_spec(a, method)), train(run_spec(b, method))
        assert read_losses(ra.metrics_path) == pytest.approx(read_losses(rb.metrics_path), rel=1e-5, abs=1e-6)
        sa, sb = state(ra.policy), state(rb.policy)
        worst = max((sa[k] - sb[k]).abs().max().item() for k in sa)
        assert worst < 1e-5, f"{method}: max weight difference {worst}"


def test_non_finite_losses_skip_updates_then_stop(world, tmp_path):
    root, paths = world
    cfg = make_config(tmp_path, paths, overrides=["train.max_steps=6", "train.max_nonfinite_in_row=2"])
    from inpo.methods.dpo import DpoMethod

    class PoisonedDpo(DpoMethod):
        """DPO whose loss turns NaN from the third micro-batch (step 2) on."""

        calls = 0

        def objective(self, batch, draws):
            out = super().objective(batch, draws)
            PoisonedDpo.calls += 1
            if PoisonedDpo.calls >= 3:
                out.loss = out.loss * float("nan")
                out.metrics["loss"] = float("nan")
            return out

    spec = dataclasses.replace(run_spec(cfg, "dpo"), method=PoisonedDpo(cfg.method.dpo))
    with pytest.raises(NonFiniteError, match="2 non-finite"):
        train(spec)
    from inpo.train.checkpoint import latest_checkpoint

    latest = latest_checkpoint(spec.ckpt_dir)
    assert latest is not None and latest.name == "step-000003"  # step 2 was skipped but checkpointed
    import json

    records = [json.loads(x) for x in spec.out_dir.joinpath("metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_nonfinite"] for r in records] == [0.0, 0.0, 1.0, 2.0]
    for key in (
        "loss",
        "implicit_acc",
        "err_pol_w",
        "err_ref_l",
        "reward_margin",
        "lr",
        "grad_norm",
        "pairs_per_s",
    ):
        assert key in records[0]


def test_sdxl_inpo_two_steps(tmp_path):
    paths = make_world(tmp_path, family="sdxl")
    cfg = make_config(tmp_path, paths, family="sdxl")
    result = train(run_spec(cfg, "inpo"))
    losses = read_losses(result.metrics_path)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)


def test_run_spec_is_the_only_input(world, tmp_path):
    """A TrainRun with a different model config (e.g. the SFT UNet) is what the loop loads."""
    root, paths = world
    cfg = make_config(tmp_path, paths)
    spec = dataclasses.replace(
        run_spec(cfg, "dpo"), model=dataclasses.replace(cfg.model, pretrained="/nonexistent")
    )
    with pytest.raises(Exception, match="nonexistent"):
        train(spec)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [  # warm-up 4 of 12 steps; diffusers: warm-up step s gets s/4, then constant / cosine / linear to 0
        ("constant", {0: 0.0, 1: 0.25, 3: 0.75, 4: 1.0, 11: 1.0}),
        ("cosine", {0: 0.0, 2: 0.5, 4: 1.0, 8: 0.5, 12: 0.0}),  # (8 - 4) / 8 = half-way: cos(π/2)
        ("linear", {0: 0.0, 2: 0.5, 4: 1.0, 8: 0.5, 10: 0.25, 12: 0.0}),
    ],
)
def test_lr_schedule_is_diffusers_get_scheduler(schedule, expected):
    from inpo.config.sections import TrainConfig
    from inpo.train.optim import lr_factor

    cfg = TrainConfig(lr_schedule=schedule, warmup_steps=4, max_steps=12)
    assert {s: lr_factor(s, cfg, 12) for s in expected} == pytest.approx(expected, abs=1e-12)


def test_adamw8bit_without_bitsandbytes_is_refused_before_work(monkeypatch):
    import importlib.util
    import typing

    from inpo.config.sections import TrainConfig
    from inpo.errors import InputError
    from inpo.stages.check import OPTIMIZER_BYTES
    from inpo.train.optim import check_optimizer

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else real(n, *a))
    with pytest.raises(InputError, match=r"train.optimizer: 'adamw8bit' needs bitsandbytes.*inpo\[gpu\]"):
        check_optimizer(TrainConfig(optimizer="adamw8bit"))
    check_optimizer(TrainConfig(optimizer="adafactor"))  # the others need nothing extra
    hints = typing.get_type_hints(TrainConfig)
    assert set(OPTIMIZER_BYTES) == set(typing.get_args(hints["optimizer"]))  # every optimizer has its estimate
