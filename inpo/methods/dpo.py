"""Diffusion-DPO (Wallace et al. 2024): one shared noise draw per pair, the preference loss on the
policy's and the reference's denoising errors of winner and loser (spec §1)."""

from __future__ import annotations

import torch

from ..config.sections import DpoMethodConfig
from .base import Method, ObjectiveOutput, PairDraws, forward_noised, pair_errors, preference_output


class DpoMethod(Method):
    name = "dpo"
    config: DpoMethodConfig
    pair_fields = ("label_w",)

    def objective(self, batch, draws: PairDraws) -> ObjectiveOutput:
        ctx = self.ctx
        x0 = torch.cat([batch.x0_w, batch.x0_l])
        t2 = torch.cat([draws.t, draws.t])
        noise = draws.noise.to(batch.x0_w)
        x_t, target = forward_noised(ctx, x0, torch.cat([noise, noise]), t2)
        errs = pair_errors(ctx, x_t, t2.to(x0.device), target, batch.cond2)
        return preference_output(self.config.beta, errs, 0, {}, batch.fields.get("label_w"))
