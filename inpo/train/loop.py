"""The training loop on accelerate: one loop for every method and model family.

Effective batch = ``train.pairs_per_device`` × processes × ``train.grad_accum`` pairs per optimizer
step. Mixed precision with fp32 master weights, gradient clipping, AdamW or Adafactor, warm-up then
constant or cosine, optional EMA (diffusers' ``EMAModel``: its decay is ``min(train.ema.decay,
(1 + n) / (10 + n))`` at its n-th update after the first, which copies; checkpoints hold ``ema.pt``
and the final weights are the EMA's; validation samples the raw policy). Logged every step
(``metrics.jsonl`` and the progress bar): loss, implicit accuracy, policy/reference errors of winner
and loser, reward margin, learning rate, grad norm, pairs/s, seconds split into inversion and update.
Checkpoints every ``checkpoint_every`` steps and at the end (atomic, keep-last-K, auto-resume). A
non-finite loss or gradient skips the update; ``max_nonfinite_in_row`` of them stop the run with the
last good checkpoint intact.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..config.sections import ModelConfig
from . import checkpoint as ckpt
from .batches import BatchLayout, iterate_steps
from .caches import build_train_caches
from .objectives import Models, compute_objective, draw_pairs
from .optim import build_optimizer, lr_factor, set_learning_rate

ValidationHook = Callable[[int, torch.nn.Module, Any, Path], dict[str, float]]


class NonFiniteError(RuntimeError):
    """Too many non-finite losses or gradients in a row."""


@dataclass
class TrainResult:
    method: str
    steps: int
    weights_dir: Path
    metrics_path: Path
    last: dict[str, float] = field(default_factory=dict)
    skipped_nonfinite: int = 0
    resumed_from: int = 0
    policy: torch.nn.Module | None = None  # the trained (unwrapped) UNet, for in-process callers
    reference: Any = None  # the ReferenceModel it was trained against


@dataclass
class RunSpec:
    """What one training run trains and where it writes (the stage functions fill this in)."""

    method: str
    index_path: Path  # the pair index written by `inpo prepare`
    out_dir: Path  # final weights (out_dir/unet) and metrics.jsonl
    ckpt_dir: Path  # resumable checkpoints (outside DVC's cache)
    model: ModelConfig  # the base (or the SFT output as both policy and reference)
    max_steps: int
    learning_rate: float
    validate: ValidationHook | None = None


def _reduce_mean(accelerator: Any, values: dict[str, float]) -> dict[str, float]:
    if accelerator.num_processes == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], device=accelerator.device, dtype=torch.float64)
    t = accelerator.reduce(t, reduction="mean")
    return dict(zip(keys, t.tolist(), strict=True))


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _truncate_jsonl(path: Path, start_step: int) -> None:
    """Drop records of steps ≥ start_step (written after the checkpoint a resumed run starts from)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] < start_step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    tmp.replace(path)


def train(cfg: Config, spec: RunSpec, accelerator: Any | None = None) -> TrainResult:
    """Train ``spec.method`` from ``spec.model``; resumes from the latest checkpoint in ``spec.ckpt_dir``."""
    from accelerate import Accelerator

    from ..data import PairDataset
    from ..models import (
        build_reference,
        encode_prompts,
        load_components,
        load_unet_weights,
        save_unet_weights,
        unet_eps,
    )

    tc = cfg.train
    if accelerator is None:
        accelerator = Accelerator(mixed_precision=tc.mixed_precision, cpu=not torch.cuda.is_available())
    device = accelerator.device
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(tc.mixed_precision, torch.float32)
    components = load_components(spec.model, device=device, dtype=half)
    policy = components.unet
    lora = spec.model.lora.enabled
    if not lora:
        policy.requires_grad_(True)
    reference = build_reference(policy, spec.model, dtype=half)
    policy.train()
    # The frozen copy runs in the policy's mode: SD UNets have no active dropout, and attention
    # kernels differ by ~1e-7 between modes, which would break policy == reference ⇒ loss = ln 2.
    reference.unet.train(policy.training)
    if tc.gradient_checkpointing:
        policy.enable_gradient_checkpointing()
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = build_optimizer(trainable, tc, spec.learning_rate)
    ema = None
    if tc.ema.enabled:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(trainable, decay=tc.ema.decay)
    policy, optimizer = accelerator.prepare(policy, optimizer)
    raw_policy = accelerator.unwrap_model(policy)

    dataset = PairDataset(spec.index_path, cfg.data, seed=tc.seed)
    layout = BatchLayout(len(dataset), tc.pairs_per_device, accelerator.num_processes, tc.grad_accum)
    abar = components.alphas_cumprod.to(device=device, dtype=torch.float32)

    spec.out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = spec.out_dir / "metrics.jsonl"
    start_step, nonfinite_in_row, skipped = 0, 0, 0
    latest = ckpt.latest_checkpoint(spec.ckpt_dir)
    if latest is not None:
        load_unet_weights(raw_policy, latest / "unet", lora)
        state = ckpt.load_checkpoint_state(latest, optimizer)
        start_step, skipped = int(state["step"]), int(state.get("skipped_nonfinite", 0))
        if ema is not None and (latest / "ema.pt").exists():
            ema.load_state_dict(torch.load(latest / "ema.pt", weights_only=True, map_location=device))
        accelerator.print(f"[{spec.method}] resuming from {latest} (step {start_step})")
    if accelerator.is_main_process:
        _truncate_jsonl(metrics_path, start_step)

    inverter_unet = reference if cfg.method.inpo.inversion.model == "reference" else None
    res = cfg.data.resolution
    # SDXL: the placeholder micro-conditioning is replaced by each row's own where it is used (objectives)
    uncond = encode_prompts(
        components, [""], resolution=res, original_sizes=[(res, res)], crop_top_lefts=[(0, 0)]
    )
    models = Models(
        policy=lambda x, t, c: unet_eps(policy, x, t, c),
        reference=reference,
        inverter=inverter_unet or (lambda x, t, c: unet_eps(raw_policy, x, t, c)),
        abar=abar,
        uncond=uncond,
    )
    caches = build_train_caches(
        cfg, spec.method, spec.model, spec.index_path, components, abar, accelerator.process_index
    )
    models.inversion_cache = caches.inversion

    def save(step: int, last: dict[str, float]) -> None:
        caches.flush()  # each process writes its own cache shard (on-disk caches only)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:

            def write_weights(path: Path) -> None:
                save_unet_weights(raw_policy, path, lora)
                if ema is not None:  # inside the temporary folder: renamed with the checkpoint, atomically
                    torch.save(ema.state_dict(), path.parent / "ema.pt")

            ckpt.save_checkpoint(
                spec.ckpt_dir,
                step,
                write_weights=write_weights,
                optimizer=optimizer,
                state={"method": spec.method, "skipped_nonfinite": skipped, "metrics": last},
                keep=tc.keep_checkpoints,
            )
        accelerator.wait_for_everyone()

    from tqdm.auto import tqdm

    bar = tqdm(
        total=spec.max_steps,
        initial=start_step,
        desc=f"train {spec.method}",
        unit="step",
        disable=not accelerator.is_main_process,
        dynamic_ncols=True,
    )
    last: dict[str, float] = {}
    for step, epoch, micro in iterate_steps(
        layout, tc.seed, start_step, spec.max_steps, accelerator.process_index
    ):
        t_step = time.perf_counter()
        lr = set_learning_rate(optimizer, spec.learning_rate, lr_factor(step, tc, spec.max_steps))
        dataset.set_epoch(epoch)
        sums: dict[str, float] = {}
        for a, indices in enumerate(micro):
            encoded = caches.encode(dataset, indices, device)
            x0_w, x0_l, cond2 = encoded.x0_w, encoded.x0_l, encoded.cond2  # cond2: winner rows, loser rows
            draws = draw_pairs(
                tc.seed, epoch, indices, tuple(x0_w.shape[1:]), tc.timestep_min, tc.timestep_max
            )
            sync = a == len(micro) - 1
            no_sync = contextlib.nullcontext() if sync else accelerator.no_sync(policy)
            with no_sync:
                with accelerator.autocast():
                    out = compute_objective(
                        spec.method, cfg.method, models, x0_w, x0_l, cond2, draws, encoded.keys
                    )
                accelerator.backward(out.loss / len(micro))
            for k, v in out.metrics.items():
                sums[k] = sums.get(k, 0.0) + v / len(micro)
            sums["unet_calls_no_grad"] = sums.get("unet_calls_no_grad", 0.0) + out.unet_calls_no_grad
        grad_norm = accelerator.clip_grad_norm_(trainable, tc.max_grad_norm)
        grad_norm = float(grad_norm) if grad_norm is not None else float("nan")
        finite = math.isfinite(grad_norm) and math.isfinite(sums.get("loss", float("nan")))
        if finite:
            optimizer.step()
            if ema is not None:
                ema.step(trainable)
            nonfinite_in_row = 0
        else:
            skipped += 1
            nonfinite_in_row += 1
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - t_step
        last = _reduce_mean(accelerator, sums)
        last.update(
            lr=lr,
            grad_norm=grad_norm,
            seconds=elapsed,
            pairs_per_s=layout.global_batch / elapsed,
            update_seconds=elapsed - last.get("inversion_seconds", 0.0),
            processes=float(accelerator.num_processes),
            skipped_nonfinite=float(skipped),
        )
        if accelerator.is_main_process:
            _append_jsonl(metrics_path, {"step": step, "epoch": epoch, **last})
        bar.update(1)
        bar.set_postfix(
            loss=f"{last.get('loss', float('nan')):.4f}", acc=f"{last.get('implicit_acc', 0):.2f}"
        )
        if nonfinite_in_row >= tc.max_nonfinite_in_row:
            bar.close()
            raise NonFiniteError(
                f"[{spec.method}] {nonfinite_in_row} non-finite losses/gradients in a row at step {step}; "
                f"stopped. The last good checkpoint is {ckpt.latest_checkpoint(spec.ckpt_dir)}"
            )
        done = step + 1
        if done % tc.checkpoint_every == 0 or done == spec.max_steps:
            save(done, last)
        if spec.validate is not None and (done % tc.validate_every == 0 or done == spec.max_steps):
            if accelerator.is_main_process:
                val = spec.validate(done, raw_policy, components, spec.out_dir)
                _append_jsonl(spec.out_dir / "validation.jsonl", {"step": done, **val})
            accelerator.wait_for_everyone()
    bar.close()
    caches.flush()

    weights_dir = spec.out_dir / "unet"
    if accelerator.is_main_process:
        if ema is not None:
            ema.copy_to(trainable)
        save_unet_weights(raw_policy, weights_dir, lora)
    accelerator.wait_for_everyone()
    return TrainResult(
        spec.method,
        spec.max_steps,
        weights_dir,
        metrics_path,
        last,
        skipped,
        start_step,
        raw_policy,
        reference,
    )
