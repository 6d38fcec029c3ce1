"""What every training method shares: the per-pair random draws, the context a method is prepared
with, the objective's output, and the DPO-shaped preference term three methods use.

Shapes: B pairs, latents [B, C, H, W]; winner and loser go through the UNet as one batch of 2B
(rows 0..B-1 winners, B..2B-1 losers).

Per-pair draws (spec §5 "Randomness") come from the pair's ``"method"`` generator, always in this
order whatever the method, so every method sees the same timestep for the same pair and epoch:
``t`` (winner; the loser's ``t`` equals it except for KTO), ``t`` of the loser for KTO, the shared
noise, the loser's own noise (KTO), and two seeds for the winner's and loser's inversion jitter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from .. import losses
from ..parametrisation import EPSILON, Parametrisation
from ..rng import pair_generator

# (x [k,...], the network's timestep [k] (model_time), cond) -> the network's output
EpsCall = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


@dataclass
class PairDraws:
    t: torch.Tensor  # [B] int64
    t_loser: torch.Tensor  # [B] int64 (KTO only; others use t)
    noise: torch.Tensor  # [B, C, H, W]
    noise_loser: torch.Tensor  # [B, C, H, W] (KTO only)
    jitter_w: list[torch.Generator]
    jitter_l: list[torch.Generator]


@dataclass(frozen=True)
class TimestepSampling:
    """How training timesteps are drawn in [t_min, t_max]: ``uniform``, or ``logit_normal`` (SD3,
    Esser et al. 2024): u = sigmoid(N(mean, std)), t = t_min + floor(u · (t_max - t_min + 1)), so u
    is the noise level's quantile (higher u, more noise) as in the paper."""

    t_min: int = 0
    t_max: int = 999
    kind: str = "uniform"
    mean: float = 0.0
    std: float = 1.0

    def draw(self, g: torch.Generator) -> torch.Tensor:
        if self.kind == "uniform":
            return torch.randint(self.t_min, self.t_max + 1, (), generator=g)
        u = torch.sigmoid(self.mean + self.std * torch.randn((), generator=g))
        span = self.t_max - self.t_min + 1
        return (self.t_min + torch.clamp((u * span).long(), max=span - 1)).to(torch.int64)


def draw_pairs(
    seed: int,
    epoch: int,
    pair_index: list[int],
    latent_shape: tuple[int, ...],
    sampling: TimestepSampling,
) -> PairDraws:
    """The per-pair random draws of one micro-batch (CPU), independent of batch layout (``sampling``:
    the timestep distribution)."""
    ts, tls, noise, noise_l, jw, jl = [], [], [], [], [], []
    for idx in pair_index:
        g = pair_generator(seed, epoch, idx, "method")
        ts.append(sampling.draw(g))
        tls.append(sampling.draw(g))
        noise.append(torch.randn(latent_shape, generator=g))
        noise_l.append(torch.randn(latent_shape, generator=g))
        seeds = torch.randint(0, 2**62, (2,), generator=g).tolist()
        jw.append(torch.Generator().manual_seed(seeds[0]))
        jl.append(torch.Generator().manual_seed(seeds[1]))
    return PairDraws(torch.stack(ts), torch.stack(tls), torch.stack(noise), torch.stack(noise_l), jw, jl)


@dataclass
class MethodContext:
    """What the loop hands a method before the first step. ``policy`` runs with grad (the wrapped,
    trained UNet); ``raw_policy`` and ``reference`` are called under no_grad."""

    policy: EpsCall
    raw_policy: EpsCall
    reference: EpsCall
    abar: torch.Tensor  # [T] float32 on the latents' device: the levels (abar; flow: sigma), see parametrisation
    components: Any  # the loaded model (text encoders for conditioning a method builds itself)
    resolution: int
    parametrisation: Parametrisation = EPSILON
    image_inputs: dict[str, Any] = field(default_factory=dict)  # what the training latents depend on
    model_identity: dict[str, Any] = field(default_factory=dict)  # the starting model (config + files)
    cache_root: Path | None = None  # <paths.checkpoints>/cache, for on-disk method caches
    image_keys_stable: bool = True  # the same image key means the same latent (data.crop: center)
    rank: int = 0


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor  # scalar, with grad
    metrics: dict[str, float]
    unet_calls_no_grad: int  # inversion + reference forward passes (counted per call, each on a batch)


class Method:
    """One training method: built from its own config section, prepared once per run, then asked for
    the loss of each micro-batch. Subclasses set ``name`` and implement :meth:`objective`.

    ``pair_fields`` names the per-pair payload it wants beside the images (see
    :data:`inpo.data.dataset.PAIR_FIELDS`); the batch carries them in ``batch.fields``."""

    name: ClassVar[str] = ""
    pair_fields: ClassVar[tuple[str, ...]] = ()
    accepts_ties: ClassVar[bool] = True  # False: a pair index with ties (data.drop_ties: false) is refused

    def __init__(self, config: Any) -> None:
        self.config = config
        self._ctx: MethodContext | None = None

    @property
    def ctx(self) -> MethodContext:
        if self._ctx is None:
            raise RuntimeError(f"method {self.name!r}: prepare(ctx) must be called before objective()")
        return self._ctx

    @classmethod
    def check_settings(cls, config: Any, flow: bool) -> None:
        """Refuse (InputError, naming the key) settings that cannot work on this kind of model
        (``flow``: a flow-matching one); called by the stage's preflight, before any load."""

    def prepare(self, ctx: MethodContext) -> None:
        """Called once per run, after the models are loaded (InPO builds its inverter and cache here)."""
        self._ctx = ctx

    def objective(self, batch: Any, draws: PairDraws) -> ObjectiveOutput:
        """``batch``: an :class:`inpo.train.encode.EncodedBatch` → loss and metrics."""
        raise NotImplementedError

    def flush(self) -> None:
        """Write whatever the method keeps on disk (called at every checkpoint and at the end)."""


# --------------------------------------------------------------------------------------------------
# The preference term of DPO and InPO
# --------------------------------------------------------------------------------------------------
def pair_errors(ctx: MethodContext, x_t: torch.Tensor, t2: torch.Tensor, target: torch.Tensor, cond2: Any):
    """Policy (with grad) and reference (no grad) per-image errors on a 2B batch → 4 tensors [B]:
    policy winner, reference winner, policy loser, reference loser."""
    net_t = model_time(ctx, t2)
    err_pol = losses.per_image_mse(ctx.policy(x_t, net_t, cond2), target)
    with torch.no_grad():
        err_ref = losses.per_image_mse(ctx.reference(x_t, net_t, cond2), target)
    b = x_t.shape[0] // 2
    return err_pol[:b], err_ref[:b], err_pol[b:], err_ref[b:]


def error_metrics(errs) -> dict[str, float]:
    pol_w, ref_w, pol_l, ref_l = errs
    return {
        "err_pol_w": pol_w.detach().mean().item(),
        "err_pol_l": pol_l.detach().mean().item(),
        "err_ref_w": ref_w.mean().item(),
        "err_ref_l": ref_l.mean().item(),
    }


def preference_output(
    beta: float,
    errs,
    extra_calls: int,
    extra: dict[str, float],
    label_w: torch.Tensor | None = None,
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> ObjectiveOutput:
    """The Diffusion-DPO loss of the errors ``errs`` (as :func:`pair_errors` returns them); with
    ``label_w`` [B] (the winner's label: 1, or 0.5 for a kept tie) the soft-label form; ``loss_fn``:
    another loss of the logits z [B] (SmPO's release form)."""
    pol_w, ref_w, pol_l, ref_l = errs
    z = losses.preference_logits(pol_w, ref_w, pol_l, ref_l, beta)
    if loss_fn is not None:
        loss = loss_fn(z)
    else:
        loss = losses.dpo_loss(z) if label_w is None else losses.soft_label_loss(z, label_w.to(z.device))
    metrics = {
        "loss": loss.item(),
        "implicit_acc": losses.implicit_accuracy(z).item(),
        "reward_margin": z.detach().mean().item(),
        **error_metrics(errs),
        **extra,
    }
    return ObjectiveOutput(loss, metrics, 1 + extra_calls)


def model_time(ctx: MethodContext, t: torch.Tensor) -> torch.Tensor:
    """The network's timestep at training timesteps ``t`` [N] (DDPM-type: ``t``; flow: sigma_t · 1000)."""
    return ctx.parametrisation.model_timestep(t, ctx.abar)


def forward_noised(ctx: MethodContext, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor):
    """(x_t, target) of the forward process in the model's parametrisation; all [N, C, H, W]."""
    p = ctx.parametrisation
    return p.noised(x0, noise, t, ctx.abar), p.target(x0, noise, t, ctx.abar)
