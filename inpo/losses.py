"""Preference losses of InPO and its baselines (spec §3): pure torch math, no I/O.

InPO and Diffusion-DPO share ``preference_logits`` + ``dpo_loss``; they differ only in how ``x_t`` and the
regression target are made (inverted ``x_t`` with ``eps_hat`` vs random noise). β convention: ``β/2`` inside
the logit, as in the released code. All per-image errors are float32 means over C, H, W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def per_image_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean over every non-batch dim of ``(pred - target)^2`` in float32. [B, C, H, W] x2 → [B]."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    diff = pred.float() - target.float()
    return diff.pow(2).mean(dim=tuple(range(1, diff.ndim)))


def implicit_reward(err_pol: Tensor, err_ref: Tensor, beta: float) -> Tensor:
    """Per-image implicit reward ``-(β/2) * (err_pol - err_ref)``: positive when the policy beats the reference.

    err_pol, err_ref: [B] → [B]. ``preference_logits = reward_w - reward_l``.
    """
    return -(beta / 2) * (err_pol - err_ref)


def preference_logits(
    err_pol_w: Tensor, err_ref_w: Tensor, err_pol_l: Tensor, err_ref_l: Tensor, beta: float
) -> Tensor:
    """``z = -(β/2) * ((err_pol_w - err_ref_w) - (err_pol_l - err_ref_l))``; all inputs [B] → z [B]."""
    return -(beta / 2) * ((err_pol_w - err_ref_w) - (err_pol_l - err_ref_l))


def dpo_loss(z: Tensor) -> Tensor:
    """``mean(softplus(-z)) = mean(-log sigmoid(z))`` over pairs (InPO and Diffusion-DPO). z: [B] → scalar."""
    return F.softplus(-z).mean()


def soft_label_loss(z: Tensor, label: Tensor) -> Tensor:
    """Binary cross-entropy of the label ``p`` (the winner's preference) against ``sigmoid(z)``:
    ``mean(p·softplus(-z) + (1-p)·softplus(z))``. z, label: [B] → scalar.

    ``p = 1`` is :func:`dpo_loss` exactly; a tie (``p = 0.5``) pulls ``z`` to 0, so its gradient is
    zero only at ``z = 0`` (policy and reference agree on the pair), never a push towards either image.
    One definition for kept ties (``data.drop_ties: false``) and the smoothed labels of SmPO."""
    if label.shape != z.shape:
        raise ValueError(f"label shape {tuple(label.shape)} differs from z's {tuple(z.shape)}")
    p = label.to(z.dtype)
    return (p * F.softplus(-z) + (1 - p) * F.softplus(z)).mean()


def smoothed_label(score_diff: Tensor, tau: float) -> Tensor:
    """SmPO's smoothed preference ``p = sigmoid(d / τ)`` for a score difference ``d = s_w − s_l`` [B] → [B].

    The release's ``exp(n_w) / (exp(n_w) + exp(n_l))`` with min-max normalised scores
    ``n = (s − min) / (max − min)`` is this with ``τ = max − min``."""
    return torch.sigmoid(score_diff / tau)


SMPO_RELEASE_SCALE = 10.0  # the release's "* 10" inside the logit


def smpo_release_loss(z: Tensor, p: Tensor) -> Tensor:
    """The SmPO release's loss ``mean(softplus(−10 (2p − 1) z))`` with ``z`` InPO's logit
    (:func:`preference_logits`). z, p: [B] (the release passes the first pair's p for all) → scalar.

    p = 1: ``dpo_loss(10 z)``, i.e. InPO's loss at 10 β. p = ½: ln 2 whatever z (zero gradient)."""
    if p.shape != z.shape:
        raise ValueError(f"p shape {tuple(p.shape)} differs from z's {tuple(z.shape)}")
    return F.softplus(-SMPO_RELEASE_SCALE * (2 * p.to(z.dtype) - 1) * z).mean()


def implicit_accuracy(z: Tensor) -> Tensor:
    """Fraction of pairs with ``z > 0`` (strict: ``z == 0`` counts as wrong). z: [B] → float32 scalar."""
    return (z > 0).float().mean()


def sft_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Plain noise-prediction MSE (SFT on winners): mean over images of ``per_image_mse``. → scalar."""
    return per_image_mse(pred, target).mean()


def kto_loss(
    err_pol: Tensor,
    err_ref: Tensor,
    desirable: Tensor,
    beta: float,
    lambda_desirable: float,
    lambda_undesirable: float,
) -> Tensor:
    """Diffusion-KTO loss over a batch of labelled images (spec §3). All inputs [B] → scalar.

    r = err_ref - err_pol; z0 = max(0, mean(r)) detached (a batch statistic: the loss depends on batch
    layout by design); u = sigmoid(β (r - z0)) if desirable else sigmoid(β (z0 - r));
    loss = mean(λ_D (1 - u) on desirable images, λ_U (1 - u) on undesirable ones).
    """
    if desirable.dtype != torch.bool:
        raise ValueError(f"desirable must be a bool tensor, got {desirable.dtype}")
    r = err_ref - err_pol
    z0 = r.mean().detach().clamp(min=0)
    utility = torch.where(desirable, torch.sigmoid(beta * (r - z0)), torch.sigmoid(beta * (z0 - r)))
    weight = torch.where(
        desirable, torch.full_like(utility, lambda_desirable), torch.full_like(utility, lambda_undesirable)
    )
    return (weight * (1 - utility)).mean()
