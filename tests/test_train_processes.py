"""Real processes: SIGKILL then resume, and two processes over gloo, through the `inpo train` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from inpo.config import to_dict
from inpo.train.checkpoint import latest_checkpoint
from inpo.train.loop import train
from tests.train_helpers import make_config, make_world, read_losses, run_spec, state

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def write_params(cfg, path: Path) -> Path:
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    return path


def load_final(cfg, method: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from inpo import layout

    return load_file(layout.train_dir(cfg, method) / "unet" / "diffusion_pytorch_model.safetensors")


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_losses_and_weights(tmp_path):
    paths = make_world(tmp_path / "world", n_rows=40)
    over = [
        "train.max_steps=10",
        "train.checkpoint_every=2",
        "train.learning_rate=1e-4",
        "method.inpo.beta=100",
    ]
    killed = make_config(tmp_path / "killed", paths, overrides=over)
    params = write_params(killed, tmp_path / "killed.yaml")
    cmd = [sys.executable, "-m", "inpo.cli", "train", "--method", "inpo", "--params", str(params)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    ckpts = run_spec(killed, "inpo").ckpt_dir
    deadline = time.time() + 120
    while latest_checkpoint(ckpts) is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended before it could be killed: {proc.stderr.read()[-2000:]!r}"
    )
    step_at_kill = int(latest_checkpoint(ckpts).name.split("-")[1])  # type: ignore[union-attr]
    assert 0 < step_at_kill < 10

    resumed = train(run_spec(killed, "inpo"))
    assert resumed.resumed_from == step_at_kill
    straight_cfg = make_config(tmp_path / "straight", paths, overrides=over)
    straight = train(run_spec(straight_cfg, "inpo"))
    assert read_losses(resumed.metrics_path) == pytest.approx(read_losses(straight.metrics_path), rel=1e-6)
    a, b = state(resumed.policy), state(straight.policy)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_double_accumulation(tmp_path):
    paths = make_world(tmp_path / "world", n_rows=24)
    over = [
        "train.max_steps=2",
        "train.pairs_per_device=1",
        "train.learning_rate=1e-4",
        "method.dpo.beta=100",
    ]
    two = make_config(
        tmp_path / "two", paths, overrides=[*over, "train.grad_accum=1", "runtime.num_processes=2"]
    )
    params = write_params(two, tmp_path / "two.yaml")
    # the product path: `inpo train` relaunches itself under `accelerate launch --multi_gpu` (gloo on CPU)
    cmd = [sys.executable, "-m", "inpo.cli", "train", "--method", "dpo", "--params", str(params)]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one = make_config(tmp_path / "one", paths, overrides=[*over, "train.grad_accum=2"])
    single = train(run_spec(one, "dpo"))
    from inpo import layout

    assert read_losses(layout.train_dir(two, "dpo") / "metrics.jsonl") == pytest.approx(
        read_losses(single.metrics_path), rel=1e-5
    )
    a, b = load_final(two, "dpo"), load_final(one, "dpo")
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-6, f"max weight difference {worst}"
    assert latest_checkpoint(run_spec(two, "dpo").ckpt_dir) is not None  # saved without a rank-0 hang
    import json

    records = (layout.train_dir(two, "dpo") / "metrics.jsonl").read_text().splitlines()
    assert json.loads(records[0])["processes"] == 2.0
