"""DDIM inversion of InPO (spec §1, §2, §5): pure torch math, no I/O.

Shapes: ``B`` pairs (or images) in a micro-batch, latents ``[B, C, H, W]``; ``abar`` is the training
noise schedule's ``alphas_cumprod`` table ``[T]`` (float32, built on the CPU as diffusers builds it).

Two inversion modes, one setting apart (spec §5):

- ``"faithful"``: the released code's behaviour. The diffusers-0.20 "leading" grid rolled by one place
  (``[1 - Δ, 1, 1 + Δ, ...]``), steps ``g -> g + Δ`` for every grid value ``g < t``, a source level below 0
  uses ``abar[0]``; the latent lands at the first level ``>= t`` (not ``t``) while ``eps_hat`` uses
  ``abar[t]`` rounded to float16, and the jitter variance is evaluated on the float16 table (except the
  first step, whose source term the release keeps in float32).
- ``"corrected"``: float32 throughout, one fixed grid ``0, Δ, 2Δ, ...`` and a final partial step from the
  last grid level below each pair's ``t`` to exactly ``t``; ``t = 0`` means ``x_t = x0``.

The model is called through ``eps_fn(x [k,C,H,W], timesteps int64 [k], rows int64 [k]) -> eps [k,C,H,W]``
where ``rows`` index the micro-batch, so the caller can pick each pair's conditioning. Pairs are grouped
by grid step, so a micro-batch costs at most ``steps`` calls whatever its mix of ``t`` (faithful: one per
grid value below the largest ``t``; corrected: at most ``steps - 1`` grid steps plus one batched call for
every pair's final partial step).

Jitter (``eta > 0``): after every step ``x += eta * sqrt(var) * z`` where pair ``i``'s ``z`` is drawn on the
CPU from ``generators[i]`` (one ``randn`` of the latent's shape per step the pair takes, in step order),
so results do not depend on batch layout. No draws happen when ``eta == 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .inversion_grids import (  # noqa: F401  (re-exported: the grids are part of this module's API)
    NUM_TRAIN_TIMESTEPS,
    _check_steps,
    corrected_levels,
    corrected_source_index,
    faithful_grid,
    faithful_grid_step,
    faithful_jitter_std,
    faithful_jitter_variance,
    faithful_landing_level,
)

EpsFn = Callable[[Tensor, Tensor, Tensor], Tensor]
InversionMode = Literal["faithful", "corrected"]
INVERSION_MODES: tuple[str, ...] = ("faithful", "corrected")


# --------------------------------------------------------------------------------------------------
# Schedule and scheduler checks
# --------------------------------------------------------------------------------------------------
def scaled_linear_alphas_cumprod(
    num_train_timesteps: int = NUM_TRAIN_TIMESTEPS, beta_start: float = 0.00085, beta_end: float = 0.012
) -> Tensor:
    """``abar [T]`` float32 exactly as diffusers builds the ``scaled_linear`` schedule (on the CPU).

    betas = linspace(sqrt(beta_start), sqrt(beta_end), T) ** 2 (float32); abar = cumprod(1 - betas).
    """
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def check_prediction_type(prediction_type: str) -> None:
    """Refuse a scheduler whose prediction the inversion cannot turn into eps (spec §5, last
    paragraph: epsilon; v_prediction converts exactly, see :mod:`inpo.parametrisation`)."""
    from .parametrisation import parametrisation_for

    parametrisation_for(prediction_type)


# --------------------------------------------------------------------------------------------------
# One-step formulas (spec §1, §2). abar arguments: a Python float, a 0-dim tensor or a [B] tensor.
# --------------------------------------------------------------------------------------------------
def _per_sample(value: Tensor | float, like: Tensor) -> Tensor:
    """Broadcast a scalar or ``[B]`` tensor against ``like [B, ...]`` as ``[B, 1, ..., 1]`` (same dtype/device)."""
    v = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if v.ndim == 0 or (v.ndim == like.ndim and v.shape[0] in (1, like.shape[0])):
        return v  # a scalar, or already broadcastable as [B, 1, ..., 1]
    if v.ndim != 1 or v.shape[0] != like.shape[0]:
        raise ValueError(f"expected a scalar or a [{like.shape[0]}] tensor, got shape {tuple(v.shape)}")
    return v.view(-1, *([1] * (like.ndim - 1)))


def x0_from_eps(x_t: Tensor, eps: Tensor, abar_t: Tensor | float) -> Tensor:
    """One-step reparametrisation ``x0_hat = (x_t - sqrt(1 - abar_t) * eps) / sqrt(abar_t)``.

    x_t, eps: [B, C, H, W]; abar_t: scalar or [B] → [B, C, H, W].
    """
    a = _per_sample(abar_t, x_t)
    return (x_t - (1 - a) ** 0.5 * eps) / a**0.5


def reparametrised_noise_from_coefficients(
    x_t: Tensor, x0: Tensor, sqrt_abar_t: Tensor | float, sqrt_one_minus_abar_t: Tensor | float
) -> Tensor:
    """``eps_hat = (x_t - x0 * sqrt_abar_t) / sqrt_one_minus_abar_t`` with given coefficients (scalar or [B])."""
    sa = _per_sample(sqrt_abar_t, x_t)
    sb = _per_sample(sqrt_one_minus_abar_t, x_t)
    return (x_t - x0 * sa) / sb


def reparametrised_noise(x_t: Tensor, x0: Tensor, abar_t: Tensor | float) -> Tensor:
    """Reparametrised noise ``eps_hat = (x_t - sqrt(abar_t) * x0) / sqrt(1 - abar_t)`` (the InPO target).

    x_t, x0: [B, C, H, W]; abar_t: scalar or [B] (float32) → [B, C, H, W].
    """
    a = _per_sample(abar_t, x_t)
    return reparametrised_noise_from_coefficients(x_t, x0, a**0.5, (1 - a) ** 0.5)


def fp16_reparametrisation_coefficients(abar: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """The release's float16 scalars for ``eps_hat`` (faithful mode), returned as exact float32 values.

    a = abar.to(float16)[t]; b = 1 - a (float16); sqrt(a), sqrt(b) each rounded to float16.
    abar: [T]; t: int64 [B] → (sqrt_abar_t, sqrt_one_minus_abar_t), each float32 [B].
    """
    a = abar.to(torch.float16)[t.to(abar.device)]
    b = 1 - a
    return (a**0.5).float(), (b**0.5).float()


def ddim_inversion_step(x_s: Tensor, eps: Tensor, abar_s: Tensor | float, abar_s2: Tensor | float) -> Tensor:
    """Deterministic DDIM move of ``x`` from level ``s`` to level ``s2`` using the noise ``eps = eps(x_s, s)``.

    x0_pred = (x_s - sqrt(1 - abar_s) * eps) / sqrt(abar_s);  x_s2 = sqrt(abar_s2) * x0_pred + sqrt(1 - abar_s2) * eps.
    Written in the operation order of diffusers 0.20 ``DDIMInverseScheduler.step``.
    x_s, eps: [B, C, H, W]; abar_s, abar_s2: scalar or [B] → [B, C, H, W].
    """
    a_s = _per_sample(abar_s, x_s)
    a_s2 = _per_sample(abar_s2, x_s)
    x0_pred = (x_s - (1 - a_s) ** 0.5 * eps) / a_s**0.5
    return a_s2**0.5 * x0_pred + (1 - a_s2) ** 0.5 * eps


def inversion_jitter_variance(abar_s: Tensor, abar_s2: Tensor) -> Tensor:
    """``var(s -> s2) = (1 - abar_s) / (1 - abar_s2) * (1 - abar_s2 / abar_s)`` (DDIM's sigma² for s2 -> s).

    abar_s, abar_s2: tensors of one shape (scalar or [B]); computed in their dtype.
    """
    return (1 - abar_s) / (1 - abar_s2) * (1 - abar_s2 / abar_s)


# --------------------------------------------------------------------------------------------------
# Inversion
# --------------------------------------------------------------------------------------------------
@dataclass
class InversionResult:
    """x_t [B, ...] (the inverted latent), eps_hat [B, ...] (its reparametrised noise, the regression
    target), n_model_calls (eps_fn calls made for this micro-batch), landing_level int64 [B] (the level
    x_t actually sits at: ``t`` in corrected mode, the grid level ``>= t`` in faithful mode)."""

    x_t: Tensor
    eps_hat: Tensor
    n_model_calls: int
    landing_level: Tensor


def _draw_jitter(generators: Sequence[torch.Generator], rows: Tensor, like: Tensor) -> Tensor:
    """One standard normal ``[*like.shape[1:]]`` per selected pair from its own CPU generator → like's device."""
    shape = tuple(like.shape[1:])
    z = torch.stack(
        [torch.randn(shape, generator=generators[int(r)], dtype=torch.float32) for r in rows.tolist()]
    )
    return z.to(device=like.device, dtype=like.dtype)


def _check_inputs(x0: Tensor, t: Tensor, eta: float, generators: Sequence[torch.Generator] | None) -> None:
    if x0.ndim < 2:
        raise ValueError(f"x0 must be [B, ...], got shape {tuple(x0.shape)}")
    if t.ndim != 1 or t.shape[0] != x0.shape[0]:
        raise ValueError(f"t must be an int64 [{x0.shape[0]}] tensor, got shape {tuple(t.shape)}")
    if t.dtype != torch.long:
        raise ValueError(f"t must be int64, got {t.dtype}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= NUM_TRAIN_TIMESTEPS):
        raise ValueError(f"t must lie in 0..{NUM_TRAIN_TIMESTEPS - 1}, got {t.tolist()}")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if eta > 0:
        if generators is None:
            raise ValueError("eta > 0 needs one torch.Generator per pair (generators=None given)")
        if len(generators) != x0.shape[0]:
            raise ValueError(
                f"need one generator per pair: {x0.shape[0]} pairs, {len(generators)} generators"
            )


def _call(eps_fn: EpsFn, x: Tensor, timesteps: Tensor, rows: Tensor) -> Tensor:
    with torch.no_grad():
        eps = eps_fn(x, timesteps, rows)
    if eps.shape != x.shape:
        raise ValueError(f"eps_fn returned shape {tuple(eps.shape)}, expected {tuple(x.shape)}")
    return eps.to(x.dtype)


def _invert_faithful(
    x0: Tensor,
    t: Tensor,
    eps_fn: EpsFn,
    abar: Tensor,
    steps: int,
    eta: float,
    generators: Sequence[torch.Generator] | None,
) -> InversionResult:
    delta = faithful_grid_step(steps)
    abar32 = abar.detach().float().cpu()
    x = x0.detach().float().clone()
    t = t.to(x.device)
    calls = 0
    for g in faithful_grid(steps):
        rows = torch.nonzero(t > g).flatten()
        if rows.numel() == 0:
            break  # the grid increases: no later step is needed by anyone
        x_sub = x[rows]
        timesteps = torch.full((rows.numel(),), g, dtype=torch.long, device=x.device)
        eps = _call(eps_fn, x_sub, timesteps, rows)
        calls += 1
        abar_src = abar32[max(g, 0)].to(x.device)  # set_alpha_to_one=False: a negative level uses abar[0]
        abar_dst = abar32[g + delta].to(x.device)
        x_new = ddim_inversion_step(x_sub, eps, abar_src, abar_dst)
        if eta > 0:
            assert generators is not None
            std = eta * faithful_jitter_std(g, steps, abar).to(x.device)
            x_new = x_new + std * _draw_jitter(generators, rows.cpu(), x_new)
        x[rows] = x_new
    sqrt_a16, sqrt_b16 = fp16_reparametrisation_coefficients(abar32, t.cpu())
    eps_hat = reparametrised_noise_from_coefficients(
        x, x0.float(), sqrt_a16.to(x.device), sqrt_b16.to(x.device)
    )
    landing = faithful_landing_level(t, steps)
    assert isinstance(landing, Tensor)
    return InversionResult(x_t=x, eps_hat=eps_hat, n_model_calls=calls, landing_level=landing)


def _corrected_grid_walk(
    x0: Tensor,
    eps_fn: EpsFn,
    abar: Tensor,
    steps: int,
    last_index: Tensor,
    eta: float = 0.0,
    generators: Sequence[torch.Generator] | None = None,
) -> tuple[Tensor, int]:
    """Walk the corrected grid; pair ``i`` goes up to level index ``last_index[i]``.

    Returns ``xs [L, B, ...]`` (``xs[k, i]`` is pair ``i`` at level ``k`` for ``k <= last_index[i]``; beyond
    that, a copy of its last level) and the number of eps_fn calls (one per grid step that any pair needs).
    """
    levels = corrected_levels(steps)
    abar32 = abar.detach().float().cpu()
    x = x0.detach().float().clone()
    xs = [x.clone()]
    calls = 0
    for k in range(len(levels) - 1):
        rows = torch.nonzero(last_index.to(x.device) > k).flatten()
        if rows.numel() > 0:
            x_sub = x[rows]
            timesteps = torch.full((rows.numel(),), levels[k], dtype=torch.long, device=x.device)
            eps = _call(eps_fn, x_sub, timesteps, rows)
            calls += 1
            abar_s, abar_s2 = abar32[levels[k]], abar32[levels[k + 1]]
            x_new = ddim_inversion_step(x_sub, eps, abar_s.to(x.device), abar_s2.to(x.device))
            if eta > 0:
                assert generators is not None
                std = eta * inversion_jitter_variance(abar_s, abar_s2) ** 0.5
                x_new = x_new + std.to(x.device) * _draw_jitter(generators, rows.cpu(), x_new)
            x[rows] = x_new
        xs.append(x.clone())
    return torch.stack(xs), calls


def corrected_grid_latents(x0: Tensor, eps_fn: EpsFn, abar: Tensor, steps: int) -> Tensor:
    """Deterministic (eta = 0) corrected-mode latents at every grid level, for the inversion cache.

    x0: [B, C, H, W] → [L, B, C, H, W] with L = steps, level ``k`` = ``corrected_levels(steps)[k]``
    (``[0]`` is ``x0``); costs ``steps - 1`` eps_fn calls.
    """
    last_index = torch.full((x0.shape[0],), steps - 1, dtype=torch.long)
    xs, _ = _corrected_grid_walk(x0, eps_fn, abar, steps, last_index)
    return xs


def final_partial_step(
    x_level: Tensor,
    level: Tensor,
    t: Tensor,
    eps_fn: EpsFn,
    abar: Tensor,
    *,
    eta: float = 0.0,
    generators: Sequence[torch.Generator] | None = None,
    rows: Tensor | None = None,
) -> tuple[Tensor, int]:
    """The corrected mode's last step, from each pair's grid ``level`` to exactly its ``t``, in one call.

    x_level: [B, C, H, W] at levels ``level`` int64 [B]; t: int64 [B] with ``t >= level``. Pairs with
    ``t == level`` (t = 0) are returned unchanged and not sent to the model. ``rows`` (default 0..B-1) are
    the micro-batch indices handed to eps_fn. Returns (x_t [B, C, H, W], number of eps_fn calls: 0 or 1).
    """
    if bool((t < level).any()):
        raise ValueError(
            f"final_partial_step needs t >= level per pair; got t={t.tolist()}, level={level.tolist()}"
        )
    batch_rows = torch.arange(x_level.shape[0], device=x_level.device) if rows is None else rows
    x = x_level.detach().float().clone()
    moving = torch.nonzero(t.to(x.device) > level.to(x.device)).flatten()
    if moving.numel() == 0:
        return x, 0
    abar32 = abar.detach().float().cpu()
    src, dst = level.cpu()[moving.cpu()], t.cpu()[moving.cpu()]
    eps = _call(eps_fn, x[moving], src.to(x.device), batch_rows[moving])
    abar_s, abar_s2 = abar32[src], abar32[dst]
    x_new = ddim_inversion_step(x[moving], eps, abar_s.to(x.device), abar_s2.to(x.device))
    if eta > 0:
        if generators is None:
            raise ValueError("eta > 0 needs one torch.Generator per pair (generators=None given)")
        std = eta * inversion_jitter_variance(abar_s, abar_s2) ** 0.5
        z = _draw_jitter(generators, moving.cpu(), x_new)
        x_new = x_new + _per_sample(std.to(x.device), x_new) * z
    x[moving] = x_new
    return x, 1


def _invert_corrected(
    x0: Tensor,
    t: Tensor,
    eps_fn: EpsFn,
    abar: Tensor,
    steps: int,
    eta: float,
    generators: Sequence[torch.Generator] | None,
) -> InversionResult:
    source_index = corrected_source_index(t, steps)
    xs, grid_calls = _corrected_grid_walk(x0, eps_fn, abar, steps, source_index, eta, generators)
    batch = torch.arange(x0.shape[0], device=xs.device)
    x_level = xs[source_index.to(xs.device), batch]
    levels = torch.tensor(corrected_levels(steps), dtype=torch.long, device=t.device)
    x_t, final_calls = final_partial_step(
        x_level, levels[source_index], t, eps_fn, abar, eta=eta, generators=generators
    )
    abar_t = abar.detach().float().cpu()[t.cpu()].to(x_t.device)
    eps_hat = reparametrised_noise(x_t, x0.float(), abar_t)
    return InversionResult(
        x_t=x_t, eps_hat=eps_hat, n_model_calls=grid_calls + final_calls, landing_level=t.clone()
    )


def invert(
    x0: Tensor,
    t: Tensor,
    eps_fn: EpsFn,
    abar: Tensor,
    *,
    mode: InversionMode,
    steps: int,
    eta: float,
    generators: Sequence[torch.Generator] | None = None,
) -> InversionResult:
    """DDIM-invert each pair's clean latent to (about) its own timestep and return the InPO target.

    x0: [B, C, H, W]; t: int64 [B] in 0..999; abar: [1000] float32 alphas_cumprod; mode: "faithful" or
    "corrected" (module docstring); steps: inversion grid size; eta: jitter scale (> 0 needs
    ``generators``, one CPU ``torch.Generator`` per pair). eps_fn is called under no_grad.
    """
    if mode not in INVERSION_MODES:
        raise ValueError(f"unknown inversion mode {mode!r}; expected one of {', '.join(INVERSION_MODES)}")
    _check_steps(steps)
    _check_inputs(x0, t, eta, generators)
    if abar.ndim != 1 or abar.shape[0] != NUM_TRAIN_TIMESTEPS:
        raise ValueError(
            f"abar must be the [{NUM_TRAIN_TIMESTEPS}] alphas_cumprod table, got {tuple(abar.shape)}"
        )
    if mode == "faithful":
        return _invert_faithful(x0, t, eps_fn, abar, steps, eta, generators)
    return _invert_corrected(x0, t, eps_fn, abar, steps, eta, generators)
