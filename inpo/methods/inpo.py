"""DDIM-InPO (Lu et al., CVPR 2025): each image's x_t by DDIM inversion of the clean latent, the
regression target its reparametrised noise eps_hat, then the Diffusion-DPO loss on those errors
(spec §1-§5). In the model's own parametrisation: the inversion steps with the eps the output
implies, and the target is the output whose one-step prediction from x_t is x0 (eps_hat itself
for epsilon models; v_hat = sqrt(abar_t) eps_hat - sqrt(1 - abar_t) x0 for v-prediction). The method owns what only it needs: the inverting model (the frozen reference or the
raw policy, ``inversion.model``), inversion guidance (the "" conditioning) and the inversion cache."""

from __future__ import annotations

import time
from typing import Any

import torch

from .. import inversion
from ..config.sections import InpoMethodConfig
from .base import EpsCall, Method, MethodContext, ObjectiveOutput, PairDraws, pair_errors, preference_output
from .inversion_cache import InversionCache, inversion_inputs


class InpoMethod(Method):
    name = "inpo"
    config: InpoMethodConfig
    label_field = "label_w"  # the per-pair label of the soft-label loss (1 hard, ½ a kept tie)
    pair_fields = ("label_w",)

    @classmethod
    def check_settings(cls, config: Any, flow: bool) -> None:
        if flow:
            check_flow_inversion(config.inversion)

    def prepare(self, ctx: MethodContext) -> None:
        from ..models import encode_prompts

        super().prepare(ctx)
        inv = self.config.inversion
        self.t_min = 0  # flow matching: the first level at or above sigma_min (a constant of the run)
        if ctx.parametrisation.flow:
            from ..flow_inversion import first_level_at_least

            check_flow_inversion(inv)
            self.t_min = first_level_at_least(ctx.abar, inv.sigma_min)
        self.inverter: EpsCall = ctx.reference if inv.model == "reference" else ctx.raw_policy
        res = ctx.resolution
        # SDXL: the placeholder micro-conditioning is replaced by each row's own where it is used
        self.uncond = encode_prompts(
            ctx.components, [""], resolution=res, original_sizes=[(res, res)], crop_top_lefts=[(0, 0)]
        )
        self.cache: InversionCache | None = None
        if inv.cache:
            if not ctx.image_keys_stable:
                raise ValueError(
                    "method.inpo.inversion.cache needs data.crop: center (random crop offsets are not "
                    "part of the cache key)"
                )
            meta = inversion_inputs(ctx.image_inputs, ctx.model_identity, inv)
            root = None if ctx.cache_root is None else ctx.cache_root / "inversion"
            self.cache = InversionCache.open(inv, ctx.abar, root, meta, ctx.rank)

    def _guided(self, cond2: Any):
        """The inverting model's output at (x, the network's timestep, rows), with inversion guidance."""
        guidance = self.config.inversion.guidance

        def output(x: torch.Tensor, net_t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            cond = cond2.select(rows)
            out = self.inverter(x, net_t, cond)
            if guidance != 1.0:
                uncond = self.uncond.select(torch.zeros_like(rows))
                if cond.time_ids is not None:  # SDXL: "" with each row's own micro-conditioning
                    uncond = uncond.with_time_ids(cond.time_ids)
                out_u = self.inverter(x, net_t, uncond)
                out = out_u + guidance * (out - out_u)  # eps is affine in the output: same mix
            return out

        return output

    def _eps_fn(self, cond2: Any):
        output, p, abar = self._guided(cond2), self.ctx.parametrisation, self.ctx.abar

        def eps_fn(x: torch.Tensor, ts: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return p.eps(output(x, ts, rows), x, _per_row(ts, x), abar)

        return eps_fn

    def _invert(self, batch, x0: torch.Tensor, t2: torch.Tensor, draws: PairDraws):
        """(inversion result, cache metrics) of the 2B images x0 at their levels t2."""
        inv, eps_fn = self.config.inversion, self._eps_fn(batch.cond2)
        with torch.no_grad():
            if self.cache is not None:
                cached = self.cache.invert(x0, t2, eps_fn, batch.keys)
                stats = {
                    "inversion_cache_hits": float(cached.hits),
                    "inversion_cache_misses": float(cached.misses),
                }
                return cached.result, stats
            result = inversion.invert(
                x0,
                t2,
                eps_fn,
                self.ctx.abar,
                mode=inv.mode,
                steps=inv.steps,
                eta=inv.eta,
                generators=draws.jitter_w + draws.jitter_l if inv.eta > 0 else None,
            )
        return result, {}

    def objective(self, batch, draws: PairDraws) -> ObjectiveOutput:
        if self.ctx.parametrisation.flow:
            return self._flow_objective(batch, draws)
        x0 = torch.cat([batch.x0_w, batch.x0_l])
        t2 = torch.cat([draws.t, draws.t]).to(x0.device)
        started = time.perf_counter()
        result, cache_stats = self._invert(batch, x0, t2, draws)
        target = self.ctx.parametrisation.target(x0, result.eps_hat.to(x0), t2, self.ctx.abar)
        extra = {
            "landing_gap": (result.landing_level.to(t2) - t2).abs().float().mean().item(),
            **cache_stats,
        }
        return self._output(batch, result.x_t, t2, target, result.n_model_calls, started, extra)

    def _flow_objective(self, batch, draws: PairDraws) -> ObjectiveOutput:
        """Flow matching: Euler inversion to each pair's sigma_t (≥ sigma_min), target v_hat."""
        from ..flow_inversion import flow_invert
        from ..parametrisation import FLOW_TIMESTEPS

        x0 = torch.cat([batch.x0_w, batch.x0_l])
        t2 = torch.cat([draws.t, draws.t]).to(x0.device)
        raised = float((t2 < self.t_min).float().mean())
        t2 = t2.clamp(min=self.t_min)
        output = self._guided(batch.cond2)
        started = time.perf_counter()
        with torch.no_grad():
            result = flow_invert(
                x0,
                self.ctx.abar[t2],
                lambda x, sigma, rows: output(x, sigma * FLOW_TIMESTEPS, rows),
                self.config.inversion.steps,
            )
        extra = {"sigma_raised_to_min": raised}
        return self._output(batch, result.x_t, t2, result.v_hat, result.n_model_calls, started, extra)

    def _output(
        self,
        batch,
        x_t: torch.Tensor,
        t2: torch.Tensor,
        target: torch.Tensor,
        inversion_calls: int,
        started: float,
        extra: dict[str, float],
    ) -> ObjectiveOutput:
        """The preference loss on the 2B images at (x_t, t2) against ``target``, with the inversion's
        cost (seconds since ``started``, model calls: doubled by inversion guidance) and ``extra``."""
        errs = pair_errors(self.ctx, x_t, t2, target, batch.cond2)
        calls = inversion_calls * (2 if self.config.inversion.guidance != 1.0 else 1)
        metrics = {
            "inversion_seconds": time.perf_counter() - started,
            "inversion_calls": float(calls),
            **extra,
        }
        return self._preference(errs, calls, metrics, batch)

    def _preference(self, errs, calls: int, metrics: dict[str, float], batch) -> ObjectiveOutput:
        """The preference term on the errors (SmPO's release form overrides it)."""
        return preference_output(self.config.beta, errs, calls, metrics, batch.fields.get(self.label_field))

    def flush(self) -> None:
        if self.cache is not None:
            self.cache.flush()


def _per_row(ts: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
    """The inversion's timestep (a scalar or [N]) as int64 [N] for the parametrisation."""
    t = torch.as_tensor(ts, dtype=torch.long)
    return t.expand(x.shape[0]) if t.ndim == 0 else t


def check_flow_inversion(inv: Any) -> None:
    """A flow-matching model inverts in corrected mode, deterministically, without the DDIM cache."""
    from ..errors import InputError

    if inv.mode != "corrected":
        raise InputError(
            "method.inpo.inversion.mode: flow-matching models invert in 'corrected' mode only "
            "(the release has no flow-matching code to be faithful to)"
        )
    if inv.eta != 0.0:
        raise InputError(
            f"method.inpo.inversion.eta: flow-matching models invert deterministically; set it to 0 (got {inv.eta})"
        )
    if inv.cache:
        raise InputError("method.inpo.inversion.cache: the inversion cache is for DDIM inversions only")
