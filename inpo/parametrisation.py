"""What the model predicts, as a small plug: the forward noising, the training target and the way back
to ``eps`` that the inversion and the losses need. Pure torch.

Epsilon prediction (SD1.5, SDXL, the toy world), v-prediction (SD2.x 768-v) and flow matching
(rectified flow: SD3.x, the toy flow world) are implemented. The methods, the inversion and the
caches go through this interface, so a family needs no edits to the loop: DPO, SFT and KTO regress
on :meth:`Parametrisation.target` of their noise draw; InPO inverts with :meth:`Parametrisation.eps`
of the model's output (DDIM) or with the velocity itself (flow matching, :mod:`inpo.flow_inversion`)
and regresses on the output whose one-step prediction from x_t is exactly x0 (see docs/method.md).

``abar`` is the scheduler's table of levels, [T] float32 indexed by the training timestep ``t``:
alphas_cumprod for the DDPM-type parametrisations, the shifted sigma (ascending in ``t``) for flow
matching (:func:`levels_of`). Shapes: ``x0``, ``noise``, ``x_t``, ``output`` [B, C, H, W]; ``t``
int64 [B].
"""

from __future__ import annotations

from torch import Tensor


def _abar_at(abar: Tensor, t: Tensor, like: Tensor) -> Tensor:
    return abar[t.to(abar.device)].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


class Parametrisation:
    name = ""
    flow = False  # True: levels are sigmas, x_t = (1 - sigma) x0 + sigma noise

    def model_timestep(self, t: Tensor, abar: Tensor) -> Tensor:
        """What the network is called with at training timestep ``t`` (DDPM-type: ``t`` itself)."""
        return t

    def noised(self, x0: Tensor, noise: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        """q(x_t | x0) = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        a = _abar_at(abar, t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def target(self, x0: Tensor, noise: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        """What the model's output regresses onto at (x_t, t)."""
        raise NotImplementedError

    def eps(self, output: Tensor, x_t: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        """The noise the model's output implies (what DDIM inversion steps with)."""
        raise NotImplementedError

    def x0(self, output: Tensor, x_t: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        """The one-step prediction of the clean sample from x_t: (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
        a = _abar_at(abar, t, x_t)
        return (x_t - (1 - a).sqrt() * self.eps(output, x_t, t, abar)) / a.sqrt()


class EpsilonPrediction(Parametrisation):
    """The model predicts the added noise: target = noise, eps = output."""

    name = "epsilon"

    def target(self, x0: Tensor, noise: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        return noise

    def eps(self, output: Tensor, x_t: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        return output


class VPrediction(Parametrisation):
    """The model predicts the velocity v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Salimans & Ho
    2022; SD2.x 768-v, ``prediction_type: v_prediction``).

    Since x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, the output converts back exactly:
    eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t and x0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v.
    At fixed x_t an error dv is an eps error sqrt(abar_t) dv, so a v-MSE is the eps-MSE / abar_t.
    """

    name = "v_prediction"

    def target(self, x0: Tensor, noise: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        a = _abar_at(abar, t, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def eps(self, output: Tensor, x_t: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        a = _abar_at(abar, t, x_t)
        return a.sqrt() * output + (1 - a).sqrt() * x_t

    def x0(self, output: Tensor, x_t: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        a = _abar_at(abar, t, x_t)
        return a.sqrt() * x_t - (1 - a).sqrt() * output


class FlowMatching(Parametrisation):
    """Rectified flow (Lipman et al. 2023; Esser et al. 2024, SD3): x_t = (1 - sigma_t) x0 + sigma_t
    noise and the model predicts the velocity dx_t/dsigma = noise - x0, so
    x0 = x_t - sigma_t v and noise = x_t + (1 - sigma_t) v. The network gets sigma_t · 1000 as its
    timestep, as diffusers' FlowMatchEulerDiscreteScheduler and SD3 pipelines pass it."""

    name = "flow_matching"
    flow = True

    def noised(self, x0: Tensor, noise: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        s = _abar_at(abar, t, x0)
        return (1 - s) * x0 + s * noise

    def target(self, x0: Tensor, noise: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        return noise - x0

    def eps(self, output: Tensor, x_t: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        return x_t + (1 - _abar_at(abar, t, x_t)) * output

    def x0(self, output: Tensor, x_t: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        return x_t - _abar_at(abar, t, x_t) * output

    def model_timestep(self, t: Tensor, abar: Tensor) -> Tensor:
        return abar[t.to(abar.device)] * FLOW_TIMESTEPS


FLOW_TIMESTEPS = 1000  # sigma → the network's timestep (num_train_timesteps of SD3's scheduler)
EPSILON = EpsilonPrediction()
V_PREDICTION = VPrediction()
FLOW_MATCHING = FlowMatching()
PARAMETRISATIONS: dict[str, Parametrisation] = {
    "epsilon": EPSILON,
    "v_prediction": V_PREDICTION,
    "flow_matching": FLOW_MATCHING,
}
PREDICTION_TYPES = ("epsilon", "v_prediction")  # a DDPM-type scheduler's prediction_type values
FLOW_SCHEDULERS = ("FlowMatchEulerDiscreteScheduler",)  # scheduler classes whose models are flows


def parametrisation_for(prediction_type: str) -> Parametrisation:
    """The plug for a DDPM-type scheduler's ``prediction_type``; others are refused until they are supported."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"scheduler prediction_type {prediction_type!r} is not supported (expected one of "
            f"{', '.join(PREDICTION_TYPES)}); sample-predicting models are refused until they are supported"
        )
    return PARAMETRISATIONS[prediction_type]


def levels_of(scheduler: object) -> Tensor:
    """The table ``abar`` of a loaded training scheduler, [T] float32 on the CPU: ``alphas_cumprod``,
    or for a flow-matching scheduler its shifted sigmas in ascending order (index t ↔ the network
    timestep sigma_t · 1000, as the scheduler's own ``timesteps``)."""
    import torch

    sigmas = getattr(scheduler, "sigmas", None)
    if type(scheduler).__name__ in FLOW_SCHEDULERS and sigmas is not None:
        return sigmas.detach().flip(0).to("cpu", torch.float32).clone()
    return scheduler.alphas_cumprod.detach().to("cpu", torch.float32).clone()  # type: ignore[attr-defined]


def parametrisation_of(scheduler: object) -> Parametrisation:
    """The plug for a loaded scheduler: flow matching for the flow schedulers, else by ``prediction_type``."""
    if type(scheduler).__name__ in FLOW_SCHEDULERS:
        if scheduler.config.get("use_dynamic_shifting"):  # type: ignore[attr-defined]
            raise ValueError(
                "use_dynamic_shifting (resolution-dependent sigma shift, FLUX-style) is not supported: "
                "set a fixed shift in the scheduler config"
            )
        return FLOW_MATCHING
    return parametrisation_for(scheduler.config.prediction_type)  # type: ignore[attr-defined]
