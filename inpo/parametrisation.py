"""What the model predicts, as a small plug: the forward noising, the training target and the way back
to ``eps`` that the inversion and the losses need. Pure torch.

Epsilon prediction (SD1.5, SDXL, the toy world) and v-prediction (SD2.x 768-v) are implemented;
flow matching (SD3.x) is the next entry of :data:`PARAMETRISATIONS`. The methods, the inversion and
the caches go through this interface, so a family needs no edits to the loop: DPO, SFT and KTO
regress on :meth:`Parametrisation.target` of their noise draw; InPO inverts with
:meth:`Parametrisation.eps` of the model's output and regresses on ``target(x0, eps_hat)``, the
output whose one-step prediction from x_t is exactly x0 (see docs/method.md).

Shapes: ``x0``, ``noise``, ``x_t``, ``output`` [B, C, H, W]; ``t`` int64 [B]; ``abar`` [T] float32.
"""

from __future__ import annotations

from torch import Tensor


def _abar_at(abar: Tensor, t: Tensor, like: Tensor) -> Tensor:
    return abar[t.to(abar.device)].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


class Parametrisation:
    name = ""

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


EPSILON = EpsilonPrediction()
V_PREDICTION = VPrediction()
PARAMETRISATIONS: dict[str, Parametrisation] = {"epsilon": EPSILON, "v_prediction": V_PREDICTION}


def parametrisation_for(prediction_type: str) -> Parametrisation:
    """The plug for a scheduler's ``prediction_type``; others are refused until they are supported."""
    if prediction_type not in PARAMETRISATIONS:
        raise ValueError(
            f"scheduler prediction_type {prediction_type!r} is not supported (expected one of "
            f"{', '.join(PARAMETRISATIONS)}); sample-predicting models are refused until they are supported"
        )
    return PARAMETRISATIONS[prediction_type]
