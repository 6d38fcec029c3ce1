"""What the model predicts, as a small plug: the forward noising, the training target and the way back
to ``eps`` that the inversion and the losses need. Pure torch.

Epsilon prediction (SD1.5, SDXL, the toy world) is the one implemented; v-prediction (SD2.x) and flow
matching (SD3.x) are the next entries of :data:`PARAMETRISATIONS`, and the methods, the inversion and
the caches go through this interface so those families need no edits to the loop.

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


class EpsilonPrediction(Parametrisation):
    """The model predicts the added noise: target = noise, eps = output."""

    name = "epsilon"

    def target(self, x0: Tensor, noise: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        return noise

    def eps(self, output: Tensor, x_t: Tensor, t: Tensor, abar: Tensor) -> Tensor:
        return output


EPSILON = EpsilonPrediction()
PARAMETRISATIONS: dict[str, Parametrisation] = {"epsilon": EPSILON}


def parametrisation_for(prediction_type: str) -> Parametrisation:
    """The plug for a scheduler's ``prediction_type``; others are refused until they are supported."""
    if prediction_type not in PARAMETRISATIONS:
        raise ValueError(
            f"scheduler prediction_type {prediction_type!r} is not supported; InPO needs an "
            f"epsilon-predicting scheduler (prediction_type one of {', '.join(PARAMETRISATIONS)}); "
            "v_prediction and sample models are refused until they are supported"
        )
    return PARAMETRISATIONS[prediction_type]
