"""The toy base recipe: train UNet and text encoder from scratch on freshly rendered scenes.

Objective: the standard epsilon MSE of SD training, ``|| eps(sqrt(abar_t) x0 + sqrt(1 - abar_t) n, t, c) - n ||²``
with ``t ~ U{0..999}`` (world toy-flow: the rectified-flow velocity MSE at the shifted sigma_t instead), captions dropped to "" with probability ``caption_dropout`` (so CFG works).
Every batch is new scenes of training prompts (random size and position), so the model never sees
a held-out prompt. AdamW, linear warm-up then cosine decay to 10% of the peak, gradient clipping,
and an EMA of the weights that is what gets saved. Seeded: same settings and thread count → same
weights.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .flaws import flawed_renders, wrong_captions, wrong_colour_variants
from .metrics import diversity, prompt_following
from .model import SCHEDULER_CONFIG, build_model, save_model
from .oracle import OracleScorer
from .prompts import heldout_prompts, training_prompts
from .sampling import sample_toy, toy_sampler
from .world import random_scenes, render

if TYPE_CHECKING:
    from ..config import Config
    from ..config.sections import ToyBaseConfig, ToyMixedConfig
    from ..models import Components


def lr_factor(step: int, cfg: ToyBaseConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine from 1 to 0.1 at ``steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def epsilon_loss(
    model: Components, x0: torch.Tensor, ids: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """x0, noise [B, 3, H, W]; ids [B, L]; t [B] → scalar mean squared error of the noise prediction."""
    x_t = model.scheduler.add_noise(x0, noise, t)
    context = model.text_encoder(ids)[0]
    return torch.nn.functional.mse_loss(model.unet(x_t, t, context).sample, noise)


def flow_loss(
    model: Components, x0: torch.Tensor, ids: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """Rectified flow: x_t = (1 - sigma_t) x0 + sigma_t noise, the network (at sigma_t · 1000)
    regresses the velocity noise - x0 → scalar mean squared error."""
    p, levels = model.parametrisation, model.levels
    x_t = p.noised(x0, noise, t, levels)
    context = model.text_encoder(ids)[0]
    prediction = model.unet(x_t, p.model_timestep(t, levels), context).sample
    return torch.nn.functional.mse_loss(prediction, p.target(x0, noise, t, levels))


def _token_table(model: Components, prompts: list[str]) -> torch.Tensor:
    tok = model.tokenizer
    return tok(
        prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def evaluate(
    model: Components, prompts: list[str], seeds_per_prompt: int, steps: int, guidance: float
) -> dict[str, Any]:
    """Sample every prompt with seeds 0..k-1; oracle mean, prompt-following accuracies and diversity."""
    items = [(p, s) for p in prompts for s in range(seeds_per_prompt)]
    item_prompts = [p for p, _ in items]
    x = sample_toy(model, item_prompts, [s for _, s in items], steps, guidance)
    images = (x.clamp(-1, 1) + 1) / 2
    return {
        "images": len(items),
        "oracle_mean": float(OracleScorer().score(images, item_prompts).mean()),
        **prompt_following(images, item_prompts),
        "diversity": diversity(images, item_prompts),
    }


@dataclass(frozen=True)
class Flawed:
    """The weak base's flaws (world toy-mixed): its settings, wrong-caption table and own stream."""

    cfg: ToyMixedConfig
    variants: list[list[int]]  # per training prompt: its wrong-colour variants (flaws.wrong_colour_variants)
    gen: torch.Generator  # apart from the data stream, so the data stream is the shipped recipe's


def draw_batch(
    prompts: list[str],
    table: torch.Tensor,
    cfg: ToyBaseConfig,
    resolution: int,
    gen: torch.Generator,
    flawed: Flawed | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One training batch from ``gen``: x0 [B, 3, H, W] in [-1, 1], ids [B, L], t [B], noise like x0.

    ``table`` holds the token ids of ``prompts`` and, in its last row, of the empty caption. With
    ``flawed`` the renders carry its flaws and some captions name a wrong colour (:mod:`.flaws`).
    """
    idx = torch.randint(len(prompts), (cfg.batch_size,), generator=gen)
    scenes = random_scenes([prompts[i] for i in idx], resolution, gen)
    x0 = (
        render(scenes, resolution) if flawed is None else flawed_renders(scenes, resolution, flawed.cfg)
    ) * 2 - 1
    dropped = torch.rand(cfg.batch_size, generator=gen) < cfg.caption_dropout
    if flawed is not None:
        idx = wrong_captions(idx, flawed.variants, flawed.cfg.wrong_colour_rate, flawed.gen)
    ids = table[torch.where(dropped, len(prompts), idx)]
    t = torch.randint(0, SCHEDULER_CONFIG["num_train_timesteps"], (cfg.batch_size,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    return x0, ids, t, noise


@torch.no_grad()
def ema_update(ema: list[torch.Tensor], params: list[torch.Tensor], step: int, decay: float) -> None:
    """ema ← d·ema + (1 − d)·param with d = min(decay, (1 + step) / (10 + step)) (a warm-up for early steps)."""
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema, params):
        e.lerp_(p.detach(), 1 - d)


def fit(model: Components, cfg: Config, progress: bool, flawed: bool = False) -> list[float]:
    """Train ``model`` in place for ``toy.base.steps`` (on ``toy.mixed``'s flawed renders when
    ``flawed``); leave the EMA weights in it; return the losses."""
    from tqdm.auto import tqdm

    toy, base = cfg.toy, cfg.toy.base
    gen = torch.Generator().manual_seed(toy.seed + 1)  # data stream, apart from the init stream
    prompts = training_prompts(toy)
    flaws = None
    if flawed:
        flaws = Flawed(toy.mixed, wrong_colour_variants(prompts), torch.Generator().manual_seed(toy.seed + 2))
    table = _token_table(model, [*prompts, ""])
    params = [*model.unet.parameters(), *model.text_encoder.parameters()]
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=base.learning_rate, weight_decay=base.weight_decay)
    model.unet.train()
    model.text_encoder.train()
    losses: list[float] = []
    bar = tqdm(range(base.steps), desc="toy base", disable=not progress, mininterval=2.0)
    for step in bar:
        x0, ids, t, noise = draw_batch(prompts, table, base, toy.resolution, gen, flaws)
        for group in opt.param_groups:
            group["lr"] = base.learning_rate * lr_factor(step, base)
        loss = (flow_loss if model.parametrisation.flow else epsilon_loss)(model, x0, ids, t, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, base.max_grad_norm)
        opt.step()
        ema_update(ema, params, step, base.ema_decay)
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    model.unet.eval()
    model.text_encoder.eval()
    return losses


def train_base(
    cfg: Config, out: str | Path, progress: bool = True, flawed: bool = False, flow_shift: float | None = None
) -> dict[str, Any]:
    """Train the toy base with ``cfg.toy`` (the weak base of world toy-mixed when ``flawed``; a
    rectified-flow base with that sigma shift when ``flow_shift``), write it to ``out`` atomically,
    return its metadata."""
    import diffusers
    import transformers

    from ..io import atomic_directory
    from ..threads import torch_threads

    toy, base = cfg.toy, cfg.toy.base
    with torch_threads(cfg.runtime.cpu_threads):
        start = time.perf_counter()
        torch.manual_seed(toy.seed)
        model = build_model(toy.resolution, toy.model, flow_shift)
        losses = fit(model, cfg, progress, flawed)
        train_seconds = time.perf_counter() - start
        tail = losses[-100:]
        steps, guidance = cfg.sample.steps, cfg.sample.guidance
        metadata: dict[str, Any] = {
            "recipe": "inpo toy base"
            + (" (flawed renders: toy-mixed's weak base)" if flawed else "")
            + (f" (rectified flow, shift {flow_shift}: toy-flow's base)" if flow_shift is not None else ""),
            "seed": toy.seed,
            "settings": {
                "resolution": toy.resolution,
                "model": asdict(toy.model),
                "base": asdict(base),
                **({"flaws": asdict(toy.mixed)} if flawed else {}),
            },
            "steps": base.steps,
            "images_seen": base.steps * base.batch_size,
            "train_seconds": round(train_seconds, 1),
            "final_loss": sum(tail) / len(tail),
            "parameters": {
                "unet": sum(p.numel() for p in model.unet.parameters()),
                "text_encoder": sum(p.numel() for p in model.text_encoder.parameters()),
            },
            "sampling": {"scheduler": toy_sampler(model), "eta": 0.0, "steps": steps, "guidance": guidance},
            "eval": {
                "heldout": evaluate(model, heldout_prompts(toy), base.eval_seeds, steps, guidance),
                "train": evaluate(model, training_prompts(toy), 2, steps, guidance),
            },
            "versions": {
                "torch": torch.__version__,
                "diffusers": diffusers.__version__,
                "transformers": transformers.__version__,
            },
            "threads": cfg.runtime.cpu_threads,
        }
        metadata["wall_seconds"] = round(time.perf_counter() - start, 1)
        with atomic_directory(out) as tmp:
            save_model(model, tmp)
            (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        return metadata
