"""Shared helpers of the DDIM inversion tests: the schedule, latents, and models with closed-form
inversions (a constant-noise model, a conditioned linear model) and a call counter."""

from __future__ import annotations

import torch
from torch import Tensor

from inpo.inversion import EpsFn, scaled_linear_alphas_cumprod

ABAR = scaled_linear_alphas_cumprod()
ABAR64 = ABAR.double()
# 16 pairs, 16 different t: both ends, grid levels (0, 100, 900), one past them, the faithful edge cases.
SIXTEEN_T = torch.tensor([0, 1, 2, 50, 99, 100, 101, 102, 333, 500, 640, 801, 899, 900, 901, 999])


def x0_latents(batch: int, seed: int = 0) -> Tensor:
    return torch.randn(batch, 2, 3, 3, generator=torch.Generator().manual_seed(seed))


def constant_noise_model(noise: Tensor) -> EpsFn:
    """eps(x, s) = noise[row]: the 'perfect' model for x_s = sqrt(abar_s) y + sqrt(1 - abar_s) noise."""
    return lambda x, s, rows: noise[rows].clone()


def forward_at(level: Tensor, x0: Tensor, noise: Tensor) -> Tensor:
    """Where the constant-noise model's inversion sits at ``level`` (per row), in float64.

    The first step predicts y = (x0 - sqrt(1 - abar_0) n) / sqrt(abar_0) (x0 is the level-0 latent, abar_0 =
    0.99915); with eps = n every later step keeps that prediction, so x_s = sqrt(abar_s) y + sqrt(1 - abar_s) n.
    """
    n = noise.double()
    y = (x0.double() - (1 - ABAR64[0]).sqrt() * n) / ABAR64[0].sqrt()
    a = ABAR64[level].view(-1, 1, 1, 1)
    return a.sqrt() * y + (1 - a).sqrt() * n


def conditioned_linear_model(cond: Tensor) -> EpsFn:
    """eps(x, s, row) = 0.2 x + 0.0005 s + 0.1 cond[row], elementwise per row (uses rows as conditioning)."""
    return lambda x, s, rows: 0.2 * x + 0.0005 * s.float().view(-1, 1, 1, 1) + 0.1 * cond[rows]


class CallCounter:
    def __init__(self, fn: EpsFn) -> None:
        self.fn = fn
        self.calls = 0
        self.batch_sizes: list[int] = []

    def __call__(self, x: Tensor, s: Tensor, rows: Tensor) -> Tensor:
        assert not torch.is_grad_enabled()  # the inversion calls the model under no_grad
        assert x.shape[0] == s.shape[0] == rows.shape[0] and s.dtype == rows.dtype == torch.long
        self.calls += 1
        self.batch_sizes.append(x.shape[0])
        return self.fn(x, s, rows)
