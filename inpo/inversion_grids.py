"""The inversion grids (spec §2, §5): the release's rolled "leading" grid with its float16 jitter
variances (faithful mode) and the fixed float32 grid of corrected mode. Pure torch; re-exported by
:mod:`inpo.inversion`.
"""

from __future__ import annotations

import torch
from torch import Tensor

NUM_TRAIN_TIMESTEPS = 1000


def _check_steps(steps: int) -> None:
    if not 1 <= steps <= NUM_TRAIN_TIMESTEPS:
        raise ValueError(f"inversion steps must be in 1..{NUM_TRAIN_TIMESTEPS}, got {steps}")


def faithful_grid_step(steps: int) -> int:
    """Δ = 1000 // steps (diffusers 0.20 ``step_ratio``)."""
    _check_steps(steps)
    return NUM_TRAIN_TIMESTEPS // steps


def faithful_grid(steps: int) -> list[int]:
    """diffusers-0.20 ``DDIMInverseScheduler`` leading grid: ``[1, 1+Δ, ...]`` rolled by one, first ``1 - Δ``.

    steps = 10 → [-99, 1, 101, ..., 801]. Each entry ``g`` is a step ``g -> g + Δ`` (model timestep ``g``).
    """
    delta = faithful_grid_step(steps)
    leading = [k * delta + 1 for k in range(steps)]  # steps_offset = 1
    return [leading[0] - delta] + leading[:-1]


def faithful_landing_level(t: int | Tensor, steps: int) -> int | Tensor:
    """Level the faithful inversion ends at: last grid value ``g < t`` plus Δ (0 when no step runs).

    steps = 10: t = 0, 1 → 1; 2..101 → 101; 102 → 201; 902..999 → 901. ``t``: int or int64 tensor.
    """
    grid = torch.tensor(faithful_grid(steps), dtype=torch.long)
    delta = faithful_grid_step(steps)
    t_tensor = torch.as_tensor(t, dtype=torch.long)
    n_steps = (grid.view(*([1] * t_tensor.ndim), -1) < t_tensor.cpu().unsqueeze(-1)).sum(-1)
    landing = torch.where(n_steps > 0, grid[(n_steps - 1).clamp(min=0)] + delta, torch.zeros_like(n_steps))
    if isinstance(t, Tensor):
        return landing.to(t.device)
    return int(landing)


def _faithful_jitter_variance_native(g: int, steps: int, abar: Tensor) -> Tensor:
    """``DDIMScheduler._get_variance(g + Δ, g)`` as the release evaluates it, in its native dtype.

    On ``alphas_cumprod`` cast to float16; for ``g < 0`` the source term is ``final_alpha_cumprod = abar[0]``,
    which the release leaves in float32, so that one variance comes out float32 (with ``1 - abar16[g + Δ]``
    still rounded in float16) and the others float16.
    """
    delta = faithful_grid_step(steps)
    table16 = abar.detach().cpu().to(torch.float16)
    abar_t = table16[g + delta]  # "alpha_prod_t" of _get_variance (the destination level), float16
    abar_prev = abar.detach().cpu().float()[0] if g < 0 else table16[g]
    beta_t = 1 - abar_t
    beta_prev = 1 - abar_prev
    return (beta_prev / beta_t) * (1 - abar_t / abar_prev)


def faithful_jitter_variance(g: int, steps: int, abar: Tensor) -> Tensor:
    """The release's jitter variance after faithful step ``g -> g + Δ``, as a 0-dim float32 tensor."""
    return _faithful_jitter_variance_native(g, steps, abar).float()


def faithful_jitter_std(g: int, steps: int, abar: Tensor) -> Tensor:
    """``sqrt(var)`` of the faithful step ``g -> g + Δ`` (square root rounded in the variance's dtype), float32.

    The jitter added is ``eta * faithful_jitter_std * z`` (``eta = 0.1`` in the release).
    """
    return (_faithful_jitter_variance_native(g, steps, abar) ** 0.5).float()


def corrected_levels(steps: int) -> list[int]:
    """Corrected-mode grid levels ``0, Δ, 2Δ, ...`` with Δ = 1000 / steps, each rounded half up to an int."""
    _check_steps(steps)
    return [(2 * k * NUM_TRAIN_TIMESTEPS + steps) // (2 * steps) for k in range(steps)]


def corrected_source_index(t: Tensor, steps: int) -> Tensor:
    """Index into ``corrected_levels(steps)`` of the last level strictly below ``t`` (0 for ``t = 0``).

    t: int64 [B] → int64 [B]. The final partial step of pair ``i`` starts at that level.
    """
    levels = torch.tensor(corrected_levels(steps), dtype=torch.long, device=t.device)
    below = (levels.unsqueeze(0) < t.unsqueeze(1)).sum(1)
    return (below - 1).clamp(min=0)
