"""SmPO (Lu et al., ICML 2025, by InPO's authors): InPO's inversion and target with *smoothed*
preference labels p ∈ [0, 1] from a reward model (the pairs' ``soft_label_0``, which ``inpo relabel``
writes: p = sigmoid(Δscore / τ)), so a near-tie pulls less than a clear win.

Two forms, one setting apart (``method.smpo.inversion.mode``):

- ``faithful``, the release (``JaydenLyh/SmPO`` ``train.py``): the ReNoise inversion of
  :mod:`inpo.renoise_inversion` (every pair to the first pair's t), and the loss
  ``softplus(−10 (2p − 1) z)`` with the *first* pair's p for the whole micro-batch
  (:func:`inpo.losses.smpo_release_loss`); the release runs one pair per device, where both are moot.
- ``corrected``: the project's corrected inversion (DDIM or flow Euler, per-pair t, as InPO) and the
  soft-label cross-entropy of the hardening issue with each pair's own p
  (:func:`inpo.losses.soft_label_loss`): p = 1 is InPO; p = ½ pulls z to 0.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from .. import losses
from ..config.sections import SmpoMethodConfig
from .base import ObjectiveOutput, PairDraws, preference_output
from .inpo import InpoMethod


class SmpoMethod(InpoMethod):
    name = "smpo"
    config: SmpoMethodConfig  # type: ignore[assignment]  # InPO's shape: beta + inversion
    label_field = "soft_label_w"
    pair_fields = ("soft_label_w",)

    @classmethod
    def check_settings(cls, config: Any, flow: bool) -> None:
        from ..errors import InputError

        inv = config.inversion
        if inv.mode == "faithful":
            if flow:
                raise InputError(
                    "method.smpo.inversion.mode: the release is for epsilon models; flow-matching "
                    "models train SmPO in 'corrected' mode"
                )
            if inv.eta != 0.0 or inv.cache or inv.guidance != 1.0:
                raise InputError(
                    "method.smpo.inversion: faithful mode is the release's deterministic, unguided, "
                    f"uncached ReNoise inversion (eta 0, guidance 1, cache off); got eta={inv.eta}, "
                    f"guidance={inv.guidance}, cache={inv.cache}"
                )
        super().check_settings(config, flow)

    def objective(self, batch, draws: PairDraws) -> ObjectiveOutput:
        if self.config.inversion.mode == "corrected":
            return super().objective(batch, draws)
        from ..renoise_inversion import renoise_invert

        x0 = torch.cat([batch.x0_w, batch.x0_l])
        t2 = torch.cat([draws.t, draws.t]).to(x0.device)  # the loss's forward: each pair's own t
        started = time.perf_counter()
        with torch.no_grad():
            result = renoise_invert(x0, t2, self._eps_fn(batch.cond2), self.ctx.abar, self.config.inversion.steps)
        extra = {"landing_gap": (result.landing_level.to(t2) - t2).abs().float().mean().item()}
        return self._output(batch, result.x_t, t2, result.eps_hat.to(x0), result.n_model_calls, started, extra)

    def _preference(self, errs, calls: int, metrics: dict[str, float], batch) -> ObjectiveOutput:
        p = batch.fields[self.label_field]
        if self.config.inversion.mode == "corrected":
            return super()._preference(errs, calls, {**metrics, "soft_label_mean": float(p.mean())}, batch)
        p_first = p[:1]  # the release: batch["probs"][0] for every pair

        def release_loss(z: torch.Tensor) -> torch.Tensor:
            return losses.smpo_release_loss(z, p_first.to(z.device).expand_as(z))

        metrics = {**metrics, "soft_label_mean": float(p.mean())}
        return preference_output(self.config.beta, errs, calls, metrics, loss_fn=release_loss)
