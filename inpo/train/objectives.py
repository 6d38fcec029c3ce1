"""One objective per method: (models, clean latents, conditioning, per-pair draws) → loss and metrics.

The math lives in :mod:`inpo.inversion` and :mod:`inpo.losses`; this module only composes it with
the UNet calls. Shapes: B pairs, latents [B, C, H, W]; winner and loser go through the UNet as one
batch of 2B (rows 0..B-1 winners, B..2B-1 losers).

Per-pair draws (spec §5 "Randomness") come from the pair's ``"method"`` generator, always in this
order whatever the method, so every method sees the same timestep for the same pair and epoch:
``t`` (winner; the loser's ``t`` equals it except for KTO), ``t`` of the loser for KTO, the shared
noise, the loser's own noise (KTO), and two seeds for the winner's and loser's inversion jitter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .. import inversion, losses
from ..config.sections import InpoMethodConfig, KtoMethodConfig, MethodsConfig
from ..rng import pair_generator

EpsCall = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]  # (x [k,...], t [k], cond) -> eps


@dataclass
class PairDraws:
    t: torch.Tensor  # [B] int64
    t_loser: torch.Tensor  # [B] int64 (KTO only; others use t)
    noise: torch.Tensor  # [B, C, H, W]
    noise_loser: torch.Tensor  # [B, C, H, W] (KTO only)
    jitter_w: list[torch.Generator]
    jitter_l: list[torch.Generator]


def draw_pairs(
    seed: int, epoch: int, pair_index: list[int], latent_shape: tuple[int, ...], t_min: int, t_max: int
) -> PairDraws:
    """The per-pair random draws of one micro-batch (CPU), independent of batch layout."""
    ts, tls, noise, noise_l, jw, jl = [], [], [], [], [], []
    for idx in pair_index:
        g = pair_generator(seed, epoch, idx, "method")
        ts.append(torch.randint(t_min, t_max + 1, (), generator=g))
        tls.append(torch.randint(t_min, t_max + 1, (), generator=g))
        noise.append(torch.randn(latent_shape, generator=g))
        noise_l.append(torch.randn(latent_shape, generator=g))
        seeds = torch.randint(0, 2**62, (2,), generator=g).tolist()
        jw.append(torch.Generator().manual_seed(seeds[0]))
        jl.append(torch.Generator().manual_seed(seeds[1]))
    return PairDraws(torch.stack(ts), torch.stack(tls), torch.stack(noise), torch.stack(noise_l), jw, jl)


@dataclass
class Models:
    """The callables an objective needs. ``policy`` runs with grad; the others under no_grad."""

    policy: EpsCall
    reference: EpsCall
    inverter: EpsCall  # the UNet that inverts (policy or reference, spec §2), called without grad
    abar: torch.Tensor  # [T] float32 on the latents' device
    uncond: Any = None  # conditioning of "" for inversion guidance != 1
    inversion_cache: Any = None  # a caches.InversionCache (method.inpo.inversion.cache) or None


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor  # scalar, with grad
    metrics: dict[str, float]
    unet_calls_no_grad: int  # inversion + reference forward passes (counted per call, each on a batch)


def noised(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """Forward diffusion q(x_t | x0) = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; [B, ...]."""
    a = abar[t.to(abar.device)].to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _pair_errors(models: Models, x_t: torch.Tensor, t2: torch.Tensor, target: torch.Tensor, cond2: Any):
    """Policy (with grad) and reference (no grad) per-image errors on a 2B batch → 4 tensors [B]."""
    err_pol = losses.per_image_mse(models.policy(x_t, t2, cond2), target)
    with torch.no_grad():
        err_ref = losses.per_image_mse(models.reference(x_t, t2, cond2), target)
    b = x_t.shape[0] // 2
    return err_pol[:b], err_ref[:b], err_pol[b:], err_ref[b:]


def _preference_output(beta: float, errs, extra_calls: int, extra: dict[str, float]) -> ObjectiveOutput:
    pol_w, ref_w, pol_l, ref_l = errs
    z = losses.preference_logits(pol_w, ref_w, pol_l, ref_l, beta)
    loss = losses.dpo_loss(z)
    metrics = {
        "loss": loss.item(),
        "implicit_acc": losses.implicit_accuracy(z).item(),
        "reward_margin": z.detach().mean().item(),
        "err_pol_w": pol_w.detach().mean().item(),
        "err_pol_l": pol_l.detach().mean().item(),
        "err_ref_w": ref_w.mean().item(),
        "err_ref_l": ref_l.mean().item(),
        **extra,
    }
    return ObjectiveOutput(loss, metrics, 1 + extra_calls)


def dpo_objective(models: Models, x0_w, x0_l, cond2, draws: PairDraws, beta: float) -> ObjectiveOutput:
    """Diffusion-DPO: one shared noise draw per pair, target = that noise."""
    t2 = torch.cat([draws.t, draws.t]).to(x0_w.device)
    noise = draws.noise.to(x0_w)
    x_t = torch.cat([noised(x0_w, noise, draws.t, models.abar), noised(x0_l, noise, draws.t, models.abar)])
    return _preference_output(beta, _pair_errors(models, x_t, t2, torch.cat([noise, noise]), cond2), 0, {})


def inpo_objective(
    models: Models, x0_w, x0_l, cond2, draws: PairDraws, cfg: InpoMethodConfig, image_keys=None
) -> ObjectiveOutput:
    """DDIM-InPO: each image's x_t by DDIM inversion, target = the reparametrised noise eps_hat.

    With ``models.inversion_cache`` the reference's eta-0 walks come from the cache, keyed by
    ``image_keys`` (2B :class:`.caches.ImageKey`, winners then losers)."""
    inv = cfg.inversion
    x0 = torch.cat([x0_w, x0_l])
    t2 = torch.cat([draws.t, draws.t]).to(x0.device)

    def eps_fn(x: torch.Tensor, ts: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        cond = cond2.select(rows)
        eps = models.inverter(x, ts, cond)
        if inv.guidance != 1.0:
            uncond = models.uncond.select(torch.zeros_like(rows))
            if cond.time_ids is not None:  # SDXL: "" with each row's own micro-conditioning
                uncond = uncond.with_time_ids(cond.time_ids)
            eps_u = models.inverter(x, ts, uncond)
            eps = eps_u + inv.guidance * (eps - eps_u)
        return eps

    started = time.perf_counter()
    cache_stats: dict[str, float] = {}
    if models.inversion_cache is not None:
        if image_keys is None:
            raise ValueError("inpo_objective: the inversion cache needs the micro-batch's image keys")
        with torch.no_grad():
            cached = models.inversion_cache.invert(x0, t2, eps_fn, image_keys)
        result = cached.result
        cache_stats = {
            "inversion_cache_hits": float(cached.hits),
            "inversion_cache_misses": float(cached.misses),
        }
    else:
        with torch.no_grad():
            result = inversion.invert(
                x0,
                t2,
                eps_fn,
                models.abar,
                mode=inv.mode,
                steps=inv.steps,
                eta=inv.eta,
                generators=draws.jitter_w + draws.jitter_l if inv.eta > 0 else None,
            )
    errs = _pair_errors(models, result.x_t, t2, result.eps_hat, cond2)
    calls = result.n_model_calls * (2 if inv.guidance != 1.0 else 1)
    extra = {
        "inversion_seconds": time.perf_counter() - started,
        "inversion_calls": float(calls),
        "landing_gap": (result.landing_level.to(t2) - t2).abs().float().mean().item(),
        **cache_stats,
    }
    return _preference_output(cfg.beta, errs, calls, extra)


def sft_objective(models: Models, x0_w, cond_w, draws: PairDraws) -> ObjectiveOutput:
    """SFT: plain noise-prediction MSE on winners."""
    t = draws.t.to(x0_w.device)
    noise = draws.noise.to(x0_w)
    pred = models.policy(noised(x0_w, noise, draws.t, models.abar), t, cond_w)
    loss = losses.sft_loss(pred, noise)
    return ObjectiveOutput(loss, {"loss": loss.item()}, 0)


def kto_objective(
    models: Models, x0_w, x0_l, cond2, draws: PairDraws, cfg: KtoMethodConfig
) -> ObjectiveOutput:
    """Diffusion-KTO: winners desirable, losers undesirable, each image with its own t and noise."""
    t2 = torch.cat([draws.t, draws.t_loser]).to(x0_w.device)
    noise = torch.cat([draws.noise, draws.noise_loser]).to(x0_w)
    x0 = torch.cat([x0_w, x0_l])
    x_t = noised(x0, noise, t2.cpu(), models.abar)
    pol_w, ref_w, pol_l, ref_l = _pair_errors(models, x_t, t2, noise, cond2)
    err_pol, err_ref = torch.cat([pol_w, pol_l]), torch.cat([ref_w, ref_l])
    desirable = torch.arange(len(err_pol), device=err_pol.device) < len(pol_w)
    loss = losses.kto_loss(
        err_pol, err_ref, desirable, cfg.beta, cfg.lambda_desirable, cfg.lambda_undesirable
    )
    metrics = {
        "loss": loss.item(),
        "err_pol_w": pol_w.detach().mean().item(),
        "err_pol_l": pol_l.detach().mean().item(),
        "err_ref_w": ref_w.mean().item(),
        "err_ref_l": ref_l.mean().item(),
    }
    return ObjectiveOutput(loss, metrics, 1)


def compute_objective(
    method: str,
    methods_cfg: MethodsConfig,
    models: Models,
    x0_w,
    x0_l,
    cond2,
    draws: PairDraws,
    image_keys=None,
) -> ObjectiveOutput:
    """Dispatch on the method name (the registry of methods). ``image_keys``: the micro-batch's 2B
    :class:`.caches.ImageKey` (winners then losers), needed by the inversion cache."""
    if method == "inpo":
        return inpo_objective(models, x0_w, x0_l, cond2, draws, methods_cfg.inpo, image_keys)
    if method == "dpo":
        return dpo_objective(models, x0_w, x0_l, cond2, draws, methods_cfg.dpo.beta)
    if method == "sft":
        return sft_objective(models, x0_w, cond2.select(torch.arange(x0_w.shape[0])), draws)
    if method == "kto":
        return kto_objective(models, x0_w, x0_l, cond2, draws, methods_cfg.kto)
    raise ValueError(f"unknown method {method!r}; expected one of inpo, dpo, sft, kto")
