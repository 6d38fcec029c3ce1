"""The SmPO release's inversion (``method.smpo.inversion.mode: faithful``): pure torch, no I/O.

The release inverts with diffusers-0.20 ``DDIMInverseScheduler`` on the same rolled "leading" grid as
InPO's release (:func:`inpo.inversion_grids.faithful_grid`), deterministically (no jitter), and with one
ReNoise refinement per step: at grid value g (a step g → g + Δ, the model called at timestep g)

    e1 = eps(x, g);   x1 = step(x, e1);   e2 = eps(x1, g);   x ← step(x, (e1 + e2) / 2)

where ``step`` is the DDIM move :func:`inpo.inversion.ddim_inversion_step` from abar[max(g, 0)] to
abar[g + Δ]. Every pair of the micro-batch is inverted to the *first* pair's t (the release's
``timesteps[0]``), over the grid values below it, and its target ``eps_hat`` uses abar at that t with the
release's float16 coefficients. Two model calls per grid step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .inversion import (
    EpsFn,
    InversionResult,
    _call,
    _check_inputs,
    ddim_inversion_step,
    faithful_grid,
    faithful_grid_step,
    faithful_landing_level,
    fp16_reparametrisation_coefficients,
    reparametrised_noise_from_coefficients,
)


def renoise_invert(x0: Tensor, t: Tensor, eps_fn: EpsFn, abar: Tensor, steps: int) -> InversionResult:
    """Invert every row of ``x0`` [B, C, H, W] to the first pair's level ``t[0]`` (t: int64 [B]) with
    ReNoise-averaged DDIM steps; ``eps_fn(x [k,…], timesteps [k], rows [k])`` is called under no_grad."""
    _check_inputs(x0, t, 0.0, None)
    delta = faithful_grid_step(steps)
    abar32 = abar.detach().float().cpu()
    x = x0.detach().float().clone()
    t_first = int(t[0])
    rows = torch.arange(x.shape[0], device=x.device)
    calls = 0
    for g in faithful_grid(steps):
        if g >= t_first:
            break
        timesteps = torch.full((x.shape[0],), g, dtype=torch.long, device=x.device)
        abar_src, abar_dst = abar32[max(g, 0)].to(x.device), abar32[g + delta].to(x.device)
        e1 = _call(eps_fn, x, timesteps, rows)
        x1 = ddim_inversion_step(x, e1, abar_src, abar_dst)
        e2 = _call(eps_fn, x1, timesteps, rows)
        x = ddim_inversion_step(x, (e1 + e2) / 2, abar_src, abar_dst)
        calls += 2
    first = torch.full_like(t.cpu(), t_first)
    sqrt_a16, sqrt_b16 = fp16_reparametrisation_coefficients(abar32, first)
    eps_hat = reparametrised_noise_from_coefficients(x, x0.float(), sqrt_a16.to(x.device), sqrt_b16.to(x.device))
    landing = faithful_landing_level(first.to(t.device), steps)
    assert isinstance(landing, Tensor)
    return InversionResult(x_t=x, eps_hat=eps_hat, n_model_calls=calls, landing_level=landing)
