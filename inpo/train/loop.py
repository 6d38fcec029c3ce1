"""The training loop on accelerate: one loop for every method and model family; it knows no method.

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

    run = training_run(cfg, "inpo", index_path=..., out_dir=..., ckpt_root=...)   # inpo.train.run
    result = train(run, observer=None)
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..methods import MethodContext, TimestepSampling, draw_pairs
from . import checkpoint as ckpt
from .batches import BatchLayout, iterate_steps
from .embedding_cache import build_batch_encoder, embedding_inputs, model_identity
from .live import LiveCurves
from .optim import build_optimizer, lr_factor, set_learning_rate
from .records import append_jsonl, read_jsonl, reduce_mean, truncate_jsonl
from .run import TrainObserver, TrainRun

__all__ = ["NonFiniteError", "TrainResult", "train"]


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
class _Session:
    """The live state of one run (models, optimizer, data, counters)."""

    run: TrainRun
    accelerator: Any
    components: Any
    policy: Any  # as accelerate wraps it (with grad)
    raw_policy: torch.nn.Module
    reference: Any
    trainable: list[torch.nn.Parameter]
    optimizer: Any
    ema: Any
    dataset: Any
    layout: BatchLayout
    abar: torch.Tensor
    encoder: Any = None
    start_step: int = 0
    resumed_metrics: dict[str, float] = field(default_factory=dict)  # the checkpoint's last step
    skipped: int = 0
    nonfinite_in_row: int = 0
    live: LiveCurves | None = None  # MLflow while training (main process, $MLFLOW_RUN_ID set)

    @property
    def timesteps(self) -> TimestepSampling:
        tc = self.run.train
        kind, mean, std = tc.timestep_sampling, tc.logit_mean, tc.logit_std
        return TimestepSampling(tc.timestep_min, tc.timestep_max, kind, mean, std)

    @property
    def metrics_path(self) -> Path:
        return self.run.out_dir / "metrics.jsonl"

    @property
    def validation_path(self) -> Path:
        return self.run.out_dir / "validation.jsonl"


def _open_session(run: TrainRun, accelerator: Any) -> _Session:
    """Load the model, build the reference, optimizer, EMA and dataset."""
    from ..data import PairDataset
    from ..data.sources import PairDataError
    from ..models import build_reference, load_components

    tc = run.train
    dataset = PairDataset(run.index_path, run.data, seed=tc.seed)  # data errors before any model load
    ties = int((dataset.index.label_0 == 0.5).sum())
    if ties and not run.method.accepts_ties:
        raise PairDataError(
            f"{run.index_path}: {ties} tie(s) kept (data.drop_ties: false); method {run.name} needs a "
            "winner in every pair: set data.drop_ties: true (DPO and InPO train ties as soft labels)"
        )
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(tc.mixed_precision, torch.float32)
    components = load_components(run.model, device=accelerator.device, dtype=half)
    policy = components.unet
    if not run.model.lora.enabled:
        policy.requires_grad_(True)
    reference = build_reference(policy, run.model, dtype=half)
    policy.train()
    # The frozen copy runs in the policy's mode: SD UNets have no active dropout, and attention
    # kernels differ by ~1e-7 between modes, which would break policy == reference ⇒ loss = ln 2.
    reference.unet.train(policy.training)
    if tc.gradient_checkpointing:
        policy.enable_gradient_checkpointing()
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = build_optimizer(trainable, tc, tc.learning_rate)
    ema = None
    if tc.ema.enabled:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(trainable, decay=tc.ema.decay)
    wrapped, optimizer = accelerator.prepare(policy, optimizer)
    layout = BatchLayout(len(dataset), tc.pairs_per_device, accelerator.num_processes, tc.grad_accum)
    abar = components.levels.to(device=accelerator.device, dtype=torch.float32)  # abar, or flow sigmas
    raw = accelerator.unwrap_model(wrapped)
    return _Session(
        run,
        accelerator,
        components,
        wrapped,
        raw,
        reference,
        trainable,
        optimizer,
        ema,
        dataset,
        layout,
        abar,
    )


def _resume(s: _Session) -> None:
    """Load the latest checkpoint of ``run.ckpt_dir`` (if any) and drop log rows written after it."""
    from ..models import load_unet_weights

    latest = ckpt.latest_checkpoint(s.run.ckpt_dir, at_most=s.run.train.max_steps)
    if latest is not None:
        load_unet_weights(s.raw_policy, latest / "unet", s.run.model.lora.enabled)
        state = ckpt.load_checkpoint_state(latest, s.optimizer)
        s.start_step, s.skipped = int(state["step"]), int(state.get("skipped_nonfinite", 0))
        s.resumed_metrics = dict(state.get("metrics", {}))
        if s.ema is not None and (latest / "ema.pt").exists():
            s.ema.load_state_dict(
                torch.load(latest / "ema.pt", weights_only=True, map_location=s.accelerator.device)
            )
        s.accelerator.print(f"[{s.run.name}] resuming from {latest} (step {s.start_step})")
    if s.accelerator.is_main_process:  # the records as an uninterrupted run has them at this step
        truncate_jsonl(s.metrics_path, s.start_step)  # rows: the 0-based step of each update
        truncate_jsonl(s.validation_path, s.start_step + 1)  # rows: the number of updates done


def _prepare_method_and_encoder(s: _Session) -> None:
    from ..models import unet_eps

    run, rank = s.run, s.accelerator.process_index
    image_inputs = embedding_inputs(run.data, run.train.mixed_precision, run.model, run.index_path)
    ctx = MethodContext(
        policy=lambda x, t, c: unet_eps(s.policy, x, t, c),
        raw_policy=lambda x, t, c: unet_eps(s.raw_policy, x, t, c),
        reference=s.reference,
        abar=s.abar,
        components=s.components,
        resolution=run.data.resolution,
        parametrisation=s.components.parametrisation,
        image_inputs=image_inputs,
        model_identity=model_identity(run.model),
        cache_root=run.cache_root,
        image_keys_stable=run.data.crop == "center",
        rank=rank,
    )
    run.method.prepare(ctx)
    cache_dir = None
    if run.train.cache_embeddings:
        if run.cache_root is None:
            raise ValueError("train.cache_embeddings: the run has no cache folder (paths.checkpoints)")
        cache_dir = run.cache_root / "embeddings"
    s.encoder = build_batch_encoder(
        s.components,
        run.data,
        cache_dir=cache_dir,
        image_inputs=image_inputs,
        pair_fields=run.method.pair_fields,
        rank=rank,
    )


def _train_step(s: _Session, step: int, epoch: int, micro: list[list[int]]) -> dict[str, float]:
    """One optimizer step over the micro-batches ``micro`` → the step's logged metrics."""
    tc, acc = s.run.train, s.accelerator
    t_step = time.perf_counter()
    lr = set_learning_rate(s.optimizer, tc.learning_rate, lr_factor(step, tc, tc.max_steps))
    s.dataset.set_epoch(epoch)
    sums: dict[str, float] = {}
    for a, indices in enumerate(micro):
        batch = s.encoder.encode(s.dataset, indices, acc.device)
        draws = draw_pairs(tc.seed, epoch, indices, tuple(batch.x0_w.shape[1:]), s.timesteps)
        no_sync = contextlib.nullcontext() if a == len(micro) - 1 else acc.no_sync(s.policy)
        with no_sync:
            with acc.autocast():
                out = s.run.method.objective(batch, draws)
            acc.backward(out.loss / len(micro))
        for k, v in out.metrics.items():
            sums[k] = sums.get(k, 0.0) + v / len(micro)
        sums["unet_calls_no_grad"] = sums.get("unet_calls_no_grad", 0.0) + out.unet_calls_no_grad
    grad_norm = acc.clip_grad_norm_(s.trainable, tc.max_grad_norm)
    grad_norm = float(grad_norm) if grad_norm is not None else float("nan")
    if math.isfinite(grad_norm) and math.isfinite(sums.get("loss", float("nan"))):
        s.optimizer.step()
        if s.ema is not None:
            s.ema.step(s.trainable)
        s.nonfinite_in_row = 0
    else:
        s.skipped += 1
        s.nonfinite_in_row += 1
    s.optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - t_step
    last = reduce_mean(acc, sums)
    last.update(
        lr=lr,
        grad_norm=grad_norm,
        seconds=elapsed,
        pairs_per_s=s.layout.global_batch / elapsed,
        update_seconds=elapsed - last.get("inversion_seconds", 0.0),
        processes=float(acc.num_processes),
        skipped_nonfinite=float(s.skipped),
    )
    return last


def _save(s: _Session, step: int, last: dict[str, float]) -> None:
    from ..models import save_unet_weights

    run, acc = s.run, s.accelerator
    run.method.flush()  # each process writes its own cache shard (on-disk caches only)
    s.encoder.flush()
    acc.wait_for_everyone()
    if acc.is_main_process:

        def write_weights(path: Path) -> None:
            save_unet_weights(s.raw_policy, path, run.model.lora.enabled)
            if s.ema is not None:  # inside the temporary folder: renamed with the checkpoint, atomically
                torch.save(s.ema.state_dict(), path.parent / "ema.pt")

        ckpt.save_checkpoint(
            run.ckpt_dir,
            step,
            write_weights=write_weights,
            optimizer=s.optimizer,
            state={"method": run.name, "skipped_nonfinite": s.skipped, "metrics": last},
            keep=run.train.keep_checkpoints,
        )
    acc.wait_for_everyone()


def _after_step(s: _Session, step: int, last: dict[str, float]) -> None:
    """Stop on too many non-finite steps; checkpoint and validate when due."""
    run, tc = s.run, s.run.train
    if s.nonfinite_in_row >= tc.max_nonfinite_in_row:
        raise NonFiniteError(
            f"[{run.name}] {s.nonfinite_in_row} non-finite losses/gradients in a row at step {step}; "
            f"stopped. The last good checkpoint is {ckpt.latest_checkpoint(run.ckpt_dir)}"
        )
    done = step + 1
    if done % tc.checkpoint_every == 0 or done == tc.max_steps:
        _save(s, done, last)
    _validate_if_due(s, done)


def _validate_if_due(s: _Session, done: int) -> None:
    """Validate after ``done`` updates when due and not recorded yet (a resume after a kill between
    the checkpoint and its validation catches up here)."""
    run, tc, acc = s.run, s.run.train, s.accelerator
    if run.validate is None or not (done % tc.validate_every == 0 or done == tc.max_steps):
        return
    if acc.is_main_process and all(r.get("step") != done for r in read_jsonl(s.validation_path)):
        val = run.validate(done, s.raw_policy, s.components, run.out_dir)
        append_jsonl(s.validation_path, {"step": done, **val})
        if s.live is not None:
            s.live.log_validation(done, val)
    acc.wait_for_everyone()


def _unets(s: _Session) -> list[torch.nn.Module]:
    unets = [s.raw_policy]
    if s.reference.unet is not s.raw_policy:
        unets.append(s.reference.unet)
    return unets


def _finish(s: _Session, last: dict[str, float]) -> TrainResult:
    """Flush the caches and write the final weights (the EMA's when on)."""
    from ..models import save_unet_weights

    run = s.run
    run.method.flush()
    s.encoder.flush()
    weights_dir = run.out_dir / "unet"
    if s.accelerator.is_main_process:
        if s.ema is not None:
            s.ema.copy_to(s.trainable)
        save_unet_weights(s.raw_policy, weights_dir, run.model.lora.enabled)
    s.accelerator.wait_for_everyone()
    return TrainResult(
        run.name,
        run.train.max_steps,
        weights_dir,
        s.metrics_path,
        last,
        s.skipped,
        s.start_step,
        s.raw_policy,
        s.reference,
    )


def train(
    run: TrainRun, observer: TrainObserver | None = None, accelerator: Any | None = None
) -> TrainResult:
    """Train ``run.method`` from ``run.model``; resumes from the latest checkpoint in ``run.ckpt_dir``."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    tc = run.train
    if accelerator is None:
        accelerator = Accelerator(mixed_precision=tc.mixed_precision, cpu=not torch.cuda.is_available())
    observer = observer or TrainObserver()
    s = _open_session(run, accelerator)
    run.out_dir.mkdir(parents=True, exist_ok=True)
    _resume(s)
    _prepare_method_and_encoder(s)
    main = accelerator.is_main_process
    if main:
        s.live = LiveCurves(run.name).start()
        observer.on_start(run, _unets(s))
    bar = tqdm(
        total=tc.max_steps,
        initial=s.start_step,
        desc=f"train {run.name}",
        unit="step",
        disable=not main,
        dynamic_ncols=True,
    )
    last: dict[str, float] = s.resumed_metrics
    if s.start_step > 0:
        _validate_if_due(s, s.start_step)
    with contextlib.closing(bar):
        for step, epoch, micro in iterate_steps(
            s.layout, tc.seed, s.start_step, tc.max_steps, s.accelerator.process_index
        ):
            if main:
                observer.on_step_start(step)
            last = _train_step(s, step, epoch, micro)
            if main:
                append_jsonl(s.metrics_path, {"step": step, "epoch": epoch, **last})
                s.live.log_step(step, {"epoch": epoch, **last})  # type: ignore[union-attr]
                observer.on_step_end(step, last)
            bar.update(1)
            bar.set_postfix(
                loss=f"{last.get('loss', float('nan')):.4f}", acc=f"{last.get('implicit_acc', 0):.2f}"
            )
            _after_step(s, step, last)
    result = _finish(s, last)
    if main:
        s.live.finish()  # type: ignore[union-attr]
        observer.on_end(result)
    return result
