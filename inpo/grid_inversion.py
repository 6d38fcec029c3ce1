"""DDIM inversion from precomputed grid latents: the math of the inversion cache (spec §5). Pure torch.

With ``eta = 0`` an image's inversion trajectory depends only on the image, its conditioning and the
inverting model, not on the pair's timestep ``t``: every ``t`` reads its starting point off the same
walk along the grid. So the walk is computed once per image (:func:`grid_latents`, no grad, batched)
and each training step only finishes it (:func:`invert_from_grid`):

- ``"corrected"``: the walk holds the latents at ``corrected_levels(steps)`` (``[0]`` is ``x0``); a step
  picks the last level below ``t`` and runs the one final partial step to exactly ``t`` (one batched
  model call per micro-batch);
- ``"faithful"``: the walk holds ``x0`` and the latent after each of the ``steps`` faithful grid steps
  (levels ``0, 1, 1 + Δ, ...``); the release lands on grid levels, so a step costs no model call.

Both return exactly what :func:`inpo.inversion.invert` returns for the same inputs with ``eta = 0``
(the same formulas in the same order; only the model's batch composition differs, so equal to fp32
rounding of the model call).

Shapes: ``B`` images, latents ``[B, C, H, W]``; walks ``[L, B, C, H, W]`` with ``L = steps`` (corrected) or
``steps + 1`` (faithful).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .inversion import (
    INVERSION_MODES,
    EpsFn,
    InversionResult,
    corrected_grid_latents,
    corrected_levels,
    corrected_source_index,
    ddim_inversion_step,
    faithful_grid,
    faithful_grid_step,
    faithful_landing_level,
    final_partial_step,
    fp16_reparametrisation_coefficients,
    reparametrised_noise,
    reparametrised_noise_from_coefficients,
)


def _check_mode(mode: str) -> None:
    if mode not in INVERSION_MODES:
        raise ValueError(f"unknown inversion mode {mode!r}; expected one of {', '.join(INVERSION_MODES)}")


def grid_levels(mode: str, steps: int) -> list[int]:
    """The level of each entry of a walk: corrected ``0, Δ, ...``; faithful ``0, 1, 1 + Δ, ..., 1 + (n-1)Δ``."""
    _check_mode(mode)
    if mode == "corrected":
        return corrected_levels(steps)
    delta = faithful_grid_step(steps)
    return [0] + [g + delta for g in faithful_grid(steps)]


def faithful_grid_latents(x0: Tensor, eps_fn: EpsFn, abar: Tensor, steps: int) -> Tensor:
    """Deterministic (eta = 0) faithful walk over the whole grid, for the inversion cache.

    x0: [B, C, H, W] → [steps + 1, B, C, H, W]; entry ``k`` is the latent after ``k`` faithful steps
    ``g -> g + Δ`` (model timestep ``g``, a source level below 0 uses ``abar[0]``), as ``_invert_faithful``
    computes them. Costs ``steps`` eps_fn calls, each on all B images (rows ``0..B-1``).
    """
    delta = faithful_grid_step(steps)
    abar32 = abar.detach().float().cpu()
    x = x0.detach().float().clone()
    rows = torch.arange(x.shape[0], device=x.device)
    xs = [x]
    for g in faithful_grid(steps):
        timesteps = torch.full((x.shape[0],), g, dtype=torch.long, device=x.device)
        with torch.no_grad():
            eps = eps_fn(x, timesteps, rows).to(x.dtype)
        abar_src = abar32[max(g, 0)].to(x.device)
        abar_dst = abar32[g + delta].to(x.device)
        x = ddim_inversion_step(x, eps, abar_src, abar_dst)
        xs.append(x)
    return torch.stack(xs)


def grid_latents(x0: Tensor, eps_fn: EpsFn, abar: Tensor, *, mode: str, steps: int) -> Tensor:
    """The walk of ``mode`` for every image: [B, C, H, W] → [L, B, C, H, W] (see :func:`grid_levels`)."""
    _check_mode(mode)
    if mode == "corrected":
        return corrected_grid_latents(x0, eps_fn, abar, steps)
    return faithful_grid_latents(x0, eps_fn, abar, steps)


def invert_from_grid(
    walk: Tensor, x0: Tensor, t: Tensor, eps_fn: EpsFn, abar: Tensor, *, mode: str, steps: int
) -> InversionResult:
    """InPO's ``x_t`` and ``eps_hat`` from cached walks, as ``invert(..., eta=0)`` would compute them.

    walk: [L, B, C, H, W] from :func:`grid_latents`; x0: [B, C, H, W]; t: int64 [B]. Corrected: one
    eps_fn call (the final partial steps of all images, per-image timesteps); faithful: none.
    """
    _check_mode(mode)
    expected = len(grid_levels(mode, steps))
    if walk.ndim != x0.ndim + 1 or walk.shape[0] != expected or walk.shape[1:] != x0.shape:
        raise ValueError(
            f"walk has shape {tuple(walk.shape)}; expected [{expected}, *{tuple(x0.shape)}] for "
            f"mode={mode!r}, steps={steps}"
        )
    batch = torch.arange(x0.shape[0], device=walk.device)
    if mode == "faithful":
        grid = torch.tensor(faithful_grid(steps), dtype=torch.long)
        taken = (grid.unsqueeze(0) < t.cpu().unsqueeze(1)).sum(1)  # steps with g < t: the walk's entry
        x_t = walk[taken.to(walk.device), batch].float()
        sqrt_a16, sqrt_b16 = fp16_reparametrisation_coefficients(abar.detach().float().cpu(), t.cpu())
        eps_hat = reparametrised_noise_from_coefficients(
            x_t, x0.float(), sqrt_a16.to(x_t.device), sqrt_b16.to(x_t.device)
        )
        landing = faithful_landing_level(t, steps)
        assert isinstance(landing, Tensor)
        return InversionResult(x_t=x_t, eps_hat=eps_hat, n_model_calls=0, landing_level=landing)
    source_index = corrected_source_index(t, steps)
    x_level = walk[source_index.to(walk.device), batch].float()
    levels = torch.tensor(corrected_levels(steps), dtype=torch.long, device=t.device)
    x_t, calls = final_partial_step(x_level, levels[source_index], t, eps_fn, abar)
    abar_t = abar.detach().float().cpu()[t.cpu()].to(x_t.device)
    eps_hat = reparametrised_noise(x_t, x0.float(), abar_t)
    return InversionResult(x_t=x_t, eps_hat=eps_hat, n_model_calls=calls, landing_level=t.clone())
