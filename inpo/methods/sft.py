"""SFT: the plain denoising loss on the winners (the paper's SD1.5 recipe starts from such a model)."""

from __future__ import annotations

from .. import losses
from ..config.sections import SftMethodConfig
from .base import Method, ObjectiveOutput, PairDraws, forward_noised, model_time


class SftMethod(Method):
    name = "sft"
    config: SftMethodConfig
    accepts_ties = False  # a tie has no winner to imitate (or desirable image)

    def objective(self, batch, draws: PairDraws) -> ObjectiveOutput:
        ctx = self.ctx
        x_t, target = forward_noised(ctx, batch.x0_w, draws.noise.to(batch.x0_w), draws.t)
        pred = ctx.policy(x_t, model_time(ctx, draws.t.to(batch.x0_w.device)), batch.cond)
        loss = losses.sft_loss(pred, target)
        return ObjectiveOutput(loss, {"loss": loss.item()}, 0)
