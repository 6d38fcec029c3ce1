"""Diffusion-KTO (Li et al. 2024): winners desirable, losers undesirable, each image with its own
timestep and noise; the loss compares each image's implicit reward with a reference point."""

from __future__ import annotations

import torch

from .. import losses
from ..config.sections import KtoMethodConfig
from .base import Method, ObjectiveOutput, PairDraws, error_metrics, forward_noised, pair_errors


class KtoMethod(Method):
    name = "kto"
    config: KtoMethodConfig
    accepts_ties = False  # a tie has no winner to imitate (or desirable image)

    def objective(self, batch, draws: PairDraws) -> ObjectiveOutput:
        ctx, cfg = self.ctx, self.config
        t2 = torch.cat([draws.t, draws.t_loser])
        noise = torch.cat([draws.noise, draws.noise_loser]).to(batch.x0_w)
        x_t, target = forward_noised(ctx, torch.cat([batch.x0_w, batch.x0_l]), noise, t2)
        errs = pair_errors(ctx, x_t, t2.to(x_t.device), target, batch.cond2)
        pol_w, ref_w, pol_l, ref_l = errs
        err_pol, err_ref = torch.cat([pol_w, pol_l]), torch.cat([ref_w, ref_l])
        desirable = torch.arange(len(err_pol), device=err_pol.device) < len(pol_w)
        loss = losses.kto_loss(
            err_pol, err_ref, desirable, cfg.beta, cfg.lambda_desirable, cfg.lambda_undesirable
        )
        return ObjectiveOutput(loss, {"loss": loss.item(), **error_metrics(errs)}, 1)
