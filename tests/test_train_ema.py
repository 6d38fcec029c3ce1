"""EMA of the policy (``train.ema``): the final weights are the EMA's, and its state survives a resume."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from inpo.models.saving import UNET_WEIGHT_NAME
from inpo.train.loop import train
from tests.train_helpers import make_config, make_world, run_spec

EMA = ["train.ema.enabled=true", "train.ema.decay=0.999", "train.keep_checkpoints=5"]
# diffusers' EMAModel (no warm-up, update_after_step 0): its n-th update uses
# decay_n = min(decay, (1 + (n - 1)) / (10 + (n - 1))), and 0 for n = 1 (the first update copies). So after
# two optimizer steps with raw weights p1, p2:
#   ema_1 = p1;  ema_2 = d·p1 + (1 - d)·p2 with d = min(0.999, 2 / 11) = 2 / 11.
D2 = 2 / 11


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ema")
    return root, make_world(root)


def _weights(folder) -> dict[str, torch.Tensor]:
    return load_file(folder / UNET_WEIGHT_NAME)


def _assert_is_hand_ema(final, p1, p2) -> None:
    worst = max((final[k] - (D2 * p1[k] + (1 - D2) * p2[k])).abs().max().item() for k in final)
    assert worst < 1e-6, f"final weights are not the EMA of the raw steps (max deviation {worst})"
    moved = max((p2[k] - p1[k]).abs().max().item() for k in p1)
    off = max((final[k] - p2[k]).abs().max().item() for k in p1)  # final - p2 = d·(p1 - p2): 2/11 of moved
    assert moved > 1e-4 and off > 0.15 * moved, "the final weights are the raw policy, not the EMA"


def test_final_weights_are_the_ema_and_ema_state_survives_a_resume(world, tmp_path):
    root, paths = world
    cfg = make_config(tmp_path, paths, overrides=EMA)
    spec = run_spec(cfg, "dpo")
    result = train(spec)
    p1 = _weights(spec.ckpt_dir / "step-000001" / "unet")  # checkpoints hold the raw policy
    p2 = _weights(spec.ckpt_dir / "step-000002" / "unet")
    final = _weights(result.weights_dir)
    _assert_is_hand_ema(final, p1, p2)

    ema_state = torch.load(spec.ckpt_dir / "step-000002" / "ema.pt", weights_only=True)
    assert ema_state["optimization_step"] == 2
    assert len(ema_state["shadow_params"]) == len(list(result.policy.parameters()))

    # The same run stopped after step 1 and resumed: the EMA continues (a fresh EMA would copy p2).
    resumed = run_spec(cfg, "dpo", "-resumed", max_steps=1)
    train(resumed)
    assert (resumed.ckpt_dir / "step-000001" / "ema.pt").exists()
    again = train(run_spec(cfg, "dpo", "-resumed", max_steps=2))
    assert again.resumed_from == 1
    r1 = _weights(resumed.ckpt_dir / "step-000001" / "unet")
    r2 = _weights(resumed.ckpt_dir / "step-000002" / "unet")
    assert all(torch.equal(r1[k], p1[k]) for k in p1)
    assert max((r2[k] - p2[k]).abs().max().item() for k in p2) < 1e-6
    _assert_is_hand_ema(_weights(again.weights_dir), r1, r2)
