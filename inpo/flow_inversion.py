"""InPO for flow-matching models: invert x0 along the model's own ODE to each pair's sigma_t, and the
reparametrised velocity (docs/method.md, "Flow matching"). Pure torch.

Rectified flow: x_sigma = (1 - sigma) x0 + sigma noise, velocity v = dx/dsigma = noise - x0.

- **Inversion** (corrected discipline, deterministic): forward Euler steps
  ``x <- x + (s' - s) v(x, s)`` from ``x0`` at sigma 0 over the grid ``s_k = k / steps``, uniform in
  the scheduler's (shifted) sigma; each row's last step is partial, so it lands exactly on its
  sigma_t. A row with sigma_t = 0.6 and 4 steps evaluates the model at 0, 0.25 and 0.5.
- **Target**: ``v_hat = (x_t - x0) / sigma_t``, the velocity whose one Euler step back from x_t
  (``x0 = x_t - sigma_t v``) returns x0 exactly. It divides by sigma_t, so sigma_t >= sigma_min.

The model is called through ``v_fn(x [k,C,H,W], sigma float32 [k], rows int64 [k]) -> v [k,C,H,W]``
(``rows``: which of the batch's images these are, to pick their conditioning).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

VelocityFn = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass
class FlowInversionResult:
    x_t: Tensor  # [N, C, H, W], at exactly ``sigma``
    v_hat: Tensor  # [N, C, H, W], the reparametrised velocity (the regression target)
    sigma: Tensor  # [N] float32, each row's landing level
    n_model_calls: int  # batched model evaluations (≤ steps)


def flow_grid(steps: int) -> Tensor:
    """The inversion's grid ``[0, 1/steps, …, (steps - 1)/steps]`` (float32 [steps])."""
    if steps < 1:
        raise ValueError(f"flow inversion needs at least 1 step, got {steps}")
    return torch.arange(steps, dtype=torch.float32) / steps


def reparametrised_velocity(x_t: Tensor, x0: Tensor, sigma: Tensor) -> Tensor:
    """``v_hat = (x_t - x0) / sigma`` per row. x_t, x0 [N, C, H, W]; sigma [N] (> 0) → [N, C, H, W]."""
    if bool((sigma <= 0).any()):
        raise ValueError("reparametrised_velocity: sigma must be > 0 (the target divides by it)")
    return (x_t - x0) / sigma.to(x_t).view(-1, *([1] * (x_t.dim() - 1)))


def euler_invert(x0: Tensor, sigma: Tensor, v_fn: VelocityFn, steps: int) -> tuple[Tensor, int]:
    """Each row of ``x0`` [N, C, H, W] carried from sigma 0 to ``sigma`` [N] (in (0, 1]) by forward
    Euler on :func:`flow_grid`; returns (x_t, the number of batched model calls)."""
    if bool(((sigma <= 0) | (sigma > 1)).any()):
        raise ValueError("euler_invert: every sigma must lie in (0, 1]")
    x = x0.clone()
    target = sigma.to(device=x0.device, dtype=torch.float32)
    at = torch.zeros_like(target)
    calls = 0
    for level in flow_grid(steps).tolist():
        active = torch.nonzero(target > level).flatten()
        if active.numel() == 0:
            break
        nxt = torch.clamp(torch.full_like(target[active], level + 1.0 / steps), max=target[active])
        v = v_fn(x[active], at[active], active)
        shape = (-1, *([1] * (x.dim() - 1)))
        x[active] = x[active] + (nxt - at[active]).to(x).view(shape) * v.to(x)
        at[active] = nxt
        calls += 1
    return x, calls


def flow_invert(x0: Tensor, sigma: Tensor, v_fn: VelocityFn, steps: int) -> FlowInversionResult:
    """The InPO inversion of a flow model: x_t by :func:`euler_invert`, target by
    :func:`reparametrised_velocity`. x0 [N, C, H, W]; sigma [N] in (0, 1]."""
    x_t, calls = euler_invert(x0, sigma, v_fn, steps)
    return FlowInversionResult(x_t, reparametrised_velocity(x_t, x0, sigma), sigma.float(), calls)


def first_level_at_least(levels: Tensor, sigma_min: float) -> int:
    """The smallest training timestep whose sigma (``levels`` [T], ascending) is ≥ ``sigma_min``."""
    above = torch.nonzero(levels >= sigma_min).flatten()
    if above.numel() == 0:
        raise ValueError(f"no training level has sigma >= {sigma_min}")
    return int(above[0])
