"""Preference losses (spec §3, §6): hand-worked values, ln 2 at policy == reference, gradient signs, KTO."""

from __future__ import annotations

import math

import pytest
import torch

from inpo.losses import (
    dpo_loss,
    implicit_accuracy,
    implicit_reward,
    kto_loss,
    per_image_mse,
    preference_logits,
    sft_loss,
    soft_label_loss,
)


def test_per_image_mse_by_hand() -> None:
    # Image 0: errors 1, 2, 3, 4 → (1 + 4 + 9 + 16) / 4 = 7.5; image 1: errors 0, 0, 0, 2 → 4 / 4 = 1.0.
    target = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.0, 0.0], [0.0, 2.0]]]])
    pred = torch.zeros_like(target)
    assert per_image_mse(pred, target).tolist() == [7.5, 1.0]
    half = per_image_mse(pred.half(), target.half())
    assert half.dtype == torch.float32 and half.tolist() == [7.5, 1.0]
    assert float(sft_loss(pred, target)) == 4.25  # mean of 7.5 and 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        per_image_mse(pred, target[:1])


def test_policy_equal_reference_gives_ln2_and_zero_accuracy() -> None:
    # Spec §6: equal errors ⇒ z = -(β/2)(0 - 0) = 0 exactly ⇒ softplus(0) = ln 2; z > 0 is false ⇒ accuracy 0.0.
    err_w = torch.tensor([0.3, 0.01, 2.5])
    err_l = torch.tensor([0.7, 0.02, 0.1])
    z = preference_logits(err_w, err_w.clone(), err_l, err_l.clone(), beta=5000.0)
    assert torch.equal(z, torch.zeros(3))
    assert float(dpo_loss(z)) == float(torch.tensor(math.log(2.0), dtype=torch.float32))
    assert float(implicit_accuracy(z)) == 0.0


def test_preference_logits_and_loss_by_hand() -> None:
    # β = 2: (pol_w - ref_w) - (pol_l - ref_l) = (0.1 - 0.3) - (0.5 - 0.2) = -0.5 ⇒ z = -(2/2)(-0.5) = 0.5;
    # loss = softplus(-0.5) = ln(1 + e^-0.5) = 0.4740770.
    z = preference_logits(
        torch.tensor([0.1]), torch.tensor([0.3]), torch.tensor([0.5]), torch.tensor([0.2]), beta=2.0
    )
    assert float(z) == pytest.approx(0.5, rel=1e-6)
    assert float(dpo_loss(z)) == pytest.approx(0.4740770, rel=1e-6)
    # z = reward_w - reward_l with reward = -(β/2)(err_pol - err_ref): 0.2 - (-0.3) = 0.5.
    reward_w = implicit_reward(torch.tensor([0.1]), torch.tensor([0.3]), beta=2.0)
    reward_l = implicit_reward(torch.tensor([0.5]), torch.tensor([0.2]), beta=2.0)
    assert float(reward_w) == pytest.approx(0.2) and float(reward_l) == pytest.approx(-0.3)
    assert float(reward_w - reward_l) == pytest.approx(float(z))


def test_implicit_accuracy_is_strict() -> None:
    # z = [1, -1, 0, 2]: two of four are > 0 (0 counts as wrong) ⇒ 0.5.
    assert float(implicit_accuracy(torch.tensor([1.0, -1.0, 0.0, 2.0]))) == 0.5


def test_gradient_signs() -> None:
    # dL/d err_pol_w = sigmoid(-z) * β/2 > 0 (lowering the winner's error lowers the loss);
    # dL/d err_pol_l = -sigmoid(-z) * β/2 < 0 (raising the loser's error lowers the loss). At z = 0, β = 4: ±1.0.
    err_pol_w = torch.tensor([0.4], requires_grad=True)
    err_pol_l = torch.tensor([0.4], requires_grad=True)
    loss = dpo_loss(
        preference_logits(err_pol_w, torch.tensor([0.4]), err_pol_l, torch.tensor([0.4]), beta=4.0)
    )
    loss.backward()
    assert err_pol_w.grad is not None and err_pol_l.grad is not None
    assert float(err_pol_w.grad) == pytest.approx(1.0) and float(err_pol_l.grad) == pytest.approx(-1.0)

    def loss_at(pol_w: float, pol_l: float) -> float:
        z = preference_logits(
            torch.tensor([pol_w]), torch.tensor([0.4]), torch.tensor([pol_l]), torch.tensor([0.4]), 4.0
        )
        return float(dpo_loss(z))

    assert loss_at(0.39, 0.4) < loss_at(0.4, 0.4) < loss_at(0.41, 0.4)
    assert loss_at(0.4, 0.41) < loss_at(0.4, 0.4)


def test_gradient_sign_through_a_policy_model() -> None:
    # A policy predicting eps = w * x; moving w toward the winner's target lowers its error and the loss.
    x = torch.ones(1, 1, 2, 2)
    target_w, target_l = 2.0 * x, torch.zeros_like(x)
    w = torch.tensor(1.0, requires_grad=True)  # policy error on winner = (w - 2)^2 = 1, loser = w^2 = 1
    err_ref = torch.tensor([1.0])  # reference (w = 1) has the same errors ⇒ z = 0 now
    z = preference_logits(
        per_image_mse(w * x, target_w), err_ref, per_image_mse(w * x, target_l), err_ref, 10.0
    )
    dpo_loss(z).backward()
    # dL/dw = sigmoid(0) * 5 * (d err_w/dw - d err_l/dw) = 0.5 * 5 * (2(w-2) - 2w) = 2.5 * (-4) = -10.
    assert w.grad is not None and float(w.grad) == pytest.approx(-10.0)


def test_large_beta_is_numerically_stable() -> None:
    # softplus(-z) for z = -1e4 is 1e4 (no overflow to inf), for z = 1e4 it is ~0.
    z = torch.tensor([-1e4, 1e4])
    assert float(dpo_loss(z)) == pytest.approx(5e3)


def test_kto_hand_worked() -> None:
    # r = err_ref - err_pol = [0.1, -0.2, 0.0, 0.2]; mean 0.025 ⇒ z0 = 0.025; desirable [T, F, T, F]; β = 10:
    # u = [σ(10(0.1 - 0.025)), σ(10(0.025 + 0.2)), σ(10(0 - 0.025)), σ(10(0.025 - 0.2))]
    #   = [σ(0.75), σ(2.25), σ(-0.25), σ(-1.75)] = [0.6791787, 0.9046505, 0.4378235, 0.1480472];
    # λ_D = 1, λ_U = 2: mean(0.3208213, 2 * 0.0953495, 0.5621765, 2 * 0.8519528) = 2.7776023 / 4 = 0.6944006.
    err_pol = torch.tensor([0.1, 0.4, 0.3, 0.2])
    err_ref = torch.tensor([0.2, 0.2, 0.3, 0.4])
    desirable = torch.tensor([True, False, True, False])
    loss = kto_loss(err_pol, err_ref, desirable, beta=10.0, lambda_desirable=1.0, lambda_undesirable=2.0)
    assert float(loss) == pytest.approx(0.6944006, abs=1e-6)


def test_kto_reference_point_clamped_at_zero_and_detached() -> None:
    # r = [0.1 - 0.5, 0.3 - 0.5] = [-0.4, -0.2], mean -0.3 < 0 ⇒ z0 = 0; β = 5, desirable [T, F]:
    # u = [σ(5 * -0.4), σ(5 * 0.2)] = [σ(-2), σ(1)] = [0.1192029, 0.7310586];
    # loss = mean(0.8807971, 0.2689414) = 0.5748693.
    err_pol = torch.tensor([0.5, 0.5], requires_grad=True)
    err_ref = torch.tensor([0.1, 0.3])
    loss = kto_loss(
        err_pol, err_ref, torch.tensor([True, False]), beta=5.0, lambda_desirable=1.0, lambda_undesirable=1.0
    )
    assert float(loss.detach()) == pytest.approx(0.5748693, abs=1e-6)
    loss.backward()
    # With z0 detached: d/d err_pol_0 of (1 - σ(β(r0 - z0)))/2 = β σ'(-2) / 2 = 5 * 0.1049936 / 2 = 0.2624840;
    # d/d err_pol_1 of (1 - σ(β(z0 - r1)))/2 = -β σ'(1) / 2 = -5 * 0.1966119 / 2 = -0.4915298.
    assert err_pol.grad is not None
    assert err_pol.grad.tolist() == pytest.approx([0.2624840, -0.4915298], abs=1e-6)


def test_kto_z0_gradient_is_cut_when_positive() -> None:
    # Positive mean r: z0 = mean(r) = 0.025 is a batch statistic but must not carry gradient.
    # Desirable single image 0 of the hand-worked batch: d/d err_pol_0 = λ_D β σ'(0.75) / 4 = 10 * 0.2179 / 4 = 0.5448.
    err_pol = torch.tensor([0.1, 0.4, 0.3, 0.2], requires_grad=True)
    err_ref = torch.tensor([0.2, 0.2, 0.3, 0.4])
    kto_loss(err_pol, err_ref, torch.tensor([True, False, True, False]), 10.0, 1.0, 2.0).backward()
    sigma = torch.sigmoid(torch.tensor(0.75))
    assert err_pol.grad is not None
    assert float(err_pol.grad[0]) == pytest.approx(float(10.0 * sigma * (1 - sigma) / 4), rel=1e-6)


def test_kto_refuses_non_bool_labels() -> None:
    with pytest.raises(ValueError, match="desirable must be a bool tensor"):
        kto_loss(torch.zeros(2), torch.zeros(2), torch.tensor([1, 0]), 1.0, 1.0, 1.0)


def test_soft_label_loss_by_hand() -> None:
    z = torch.tensor([0.0, 2.0, -1.0])
    label = torch.tensor([1.0, 0.5, 0.75])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731  softplus
    want = (sp(-0.0) + (0.5 * sp(-2.0) + 0.5 * sp(2.0)) + (0.75 * sp(1.0) + 0.25 * sp(-1.0))) / 3
    assert soft_label_loss(z, label).item() == pytest.approx(want, rel=1e-6)


def test_soft_label_one_is_the_dpo_loss_exactly() -> None:
    z = torch.randn(64, generator=torch.Generator().manual_seed(0)) * 5
    assert torch.equal(soft_label_loss(z, torch.ones(64)), dpo_loss(z))


def test_a_tie_has_zero_gradient_only_at_z_zero() -> None:
    for value, sign in ((0.0, 0), (1.5, 1), (-1.5, -1)):
        z = torch.tensor([value], requires_grad=True)
        soft_label_loss(z, torch.tensor([0.5])).backward()
        g = z.grad.item()  # d/dz = sigmoid(z) - 0.5: pulls z back to 0 from either side
        assert g == pytest.approx(torch.sigmoid(torch.tensor(value)).item() - 0.5, abs=1e-7)
        assert (g > 0) - (g < 0) == sign


def test_soft_label_loss_refuses_a_misshaped_label() -> None:
    with pytest.raises(ValueError, match="label shape"):
        soft_label_loss(torch.zeros(3), torch.ones(2))
