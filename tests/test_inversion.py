"""DDIM inversion (spec §1, §2, §5, §6): formulas, grids, landing on t, call counts, batching."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from inpo.inversion import (
    InversionMode,
    check_prediction_type,
    corrected_levels,
    corrected_source_index,
    ddim_inversion_step,
    faithful_grid,
    faithful_landing_level,
    inversion_jitter_variance,
    invert,
    reparametrised_noise,
    x0_from_eps,
)
from inpo.rng import pair_generators

from .inversion_helpers import (
    ABAR,
    ABAR64,
    SIXTEEN_T,
    CallCounter,
    conditioned_linear_model,
    constant_noise_model,
    forward_at,
    x0_latents,
)


# ---------------------------------------------------------------------------------------- formulas
def test_reparametrisation_round_trip_any_x_t_any_t() -> None:
    # Spec §6: x0_hat(x_t, eps_hat(x_t, x0, t), t) == x0 for ANY x_t (here unrelated random noise), all t.
    # Error is float32 rounding of x_t and x0 (|x| <~ 5): a few ulps, far below 1e-5.
    t = torch.arange(1000)
    x0 = x0_latents(1000, seed=1)
    x_t = 2.0 * x0_latents(1000, seed=2)
    eps_hat = reparametrised_noise(x_t, x0, ABAR[t])
    assert (x0_from_eps(x_t, eps_hat, ABAR[t]) - x0).abs().max() < 1e-5
    # A scalar abar works the same way.
    assert torch.allclose(reparametrised_noise(x_t[500:501], x0[500:501], float(ABAR[500])), eps_hat[500:501])


def test_dpo_path_eps_hat_is_the_noise() -> None:
    # Spec §1/§6: x_t = sqrt(abar) x0 + sqrt(1 - abar) eps  ⇒  eps_hat == eps. The subtraction cancels
    # sqrt(abar) x0, so the float32 error is ~ulp(|x|) / sqrt(1 - abar_t): allow 8 * 2^-23 * 5 / sqrt(1 - abar_t).
    t = torch.arange(1000)
    x0, eps = x0_latents(1000, seed=3), x0_latents(1000, seed=4)
    a = ABAR[t].view(-1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    err = (reparametrised_noise(x_t, x0, ABAR[t]) - eps).abs().amax(dim=(1, 2, 3))
    assert torch.all(err <= 8 * 2**-23 * 5 / (1 - ABAR[t]).sqrt())


def test_ddim_step_with_the_true_noise_moves_along_the_forward_process() -> None:
    # With eps = the noise that made x_s, x0_pred == x0, so the step lands on sqrt(a2) x0 + sqrt(1 - a2) eps.
    x0, eps = x0_latents(2, seed=5), x0_latents(2, seed=6)
    x_s = ABAR64[100].sqrt() * x0.double() + (1 - ABAR64[100]).sqrt() * eps.double()
    x_s2 = ddim_inversion_step(x_s, eps.double(), ABAR64[100], ABAR64[700])
    assert torch.allclose(x_s2, ABAR64[700].sqrt() * x0.double() + (1 - ABAR64[700]).sqrt() * eps.double())


def test_jitter_variance_formula_by_hand() -> None:
    # abar_s = 0.9, abar_s2 = 0.5: (0.1 / 0.5) * (1 - 0.5 / 0.9) = 0.2 * 4/9 = 0.0888...
    assert float(inversion_jitter_variance(torch.tensor(0.9), torch.tensor(0.5))) == pytest.approx(
        0.8 / 9, rel=1e-6
    )


def test_refuses_schedulers_it_cannot_invert() -> None:
    check_prediction_type("epsilon")
    check_prediction_type("v_prediction")
    with pytest.raises(ValueError, match="'sample' is not supported .expected one of epsilon, v_prediction"):
        check_prediction_type("sample")


# ------------------------------------------------------------------------------------------- grids
def test_faithful_grids() -> None:
    assert faithful_grid(10) == [-99, 1, 101, 201, 301, 401, 501, 601, 701, 801]
    # Δ = 1000 // 5 = 200: leading [1, 201, 401, 601, 801] rolled, first entry 1 - 200.
    assert faithful_grid(5) == [-199, 1, 201, 401, 601]
    # Δ = 1000 // 3 = 333: leading [1, 334, 667] rolled, first entry 1 - 333.
    assert faithful_grid(3) == [-332, 1, 334]


def test_faithful_landing_levels() -> None:
    # Spec §4 table: t = 0, 1 → 1; 2..101 → 101; 102 → 201; 902..999 → 901.
    assert faithful_landing_level(0, 10) == faithful_landing_level(1, 10) == 1
    assert {faithful_landing_level(t, 10) for t in range(2, 102)} == {101}
    assert faithful_landing_level(102, 10) == 201
    assert {faithful_landing_level(t, 10) for t in range(902, 1000)} == {901}
    # Closed form for every t: the smallest of 1, 101, ..., 901 that is >= t, capped at 901.
    t = torch.arange(1000)
    expected = torch.clamp(1 + 100 * torch.div(t - 1 + 99, 100, rounding_mode="floor"), min=1, max=901)
    landing = faithful_landing_level(t, 10)
    assert isinstance(landing, Tensor) and torch.equal(landing, expected)
    # Mean model calls per image with uniform t ≈ 6.4 (spec §4): calls = number of grid values below t.
    calls = (torch.tensor(faithful_grid(10)).view(1, -1) < t.view(-1, 1)).sum(1).double()
    assert float(calls.mean()) == pytest.approx(6.4, abs=0.05)


def test_corrected_levels_and_source_index() -> None:
    assert corrected_levels(10) == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]
    assert corrected_levels(3) == [0, 333, 667]  # 1000/3 = 333.3, 2000/3 = 666.7 rounded
    assert corrected_levels(30)[:4] == [0, 33, 67, 100]
    # Last level strictly below t; t = 100 (a grid level) starts its final step at 0, t = 0 at index 0.
    t = torch.tensor([0, 1, 100, 101, 900, 901, 999])
    assert corrected_source_index(t, 10).tolist() == [0, 0, 0, 1, 8, 9, 9]
    # Mean calls per image with uniform t ≈ 5.5 (spec §5): calls = number of levels below t.
    calls = (torch.tensor(corrected_levels(10)).view(1, -1) < torch.arange(1000).view(-1, 1)).sum(1).double()
    assert float(calls.mean()) == pytest.approx(5.49, abs=1e-9)  # (100 * (1 + ... + 9) + 99 * 10) / 1000


# --------------------------------------------------------------------------------- landing exactly
def test_corrected_lands_exactly_on_each_pairs_t() -> None:
    # With the constant-noise model eps(x, s) = n the inversion follows the forward process of
    # y = x0_pred(x0, level 0) (see forward_at), so the level it reached can be read off x: landing on t exactly
    # ⇔ x_t = sqrt(abar_t) y + sqrt(1 - abar_t) n, pair by pair, 16 different t in one batch.
    # One level off would be visible: |sqrt(1 - abar_1) - sqrt(1 - abar_0)| ≈ 0.012 >> the 2e-6 tolerance.
    x0, noise = x0_latents(16, seed=7), x0_latents(16, seed=8)
    result = invert(x0, SIXTEEN_T, constant_noise_model(noise), ABAR, mode="corrected", steps=10, eta=0.0)
    assert torch.equal(result.x_t[0], x0[0])  # t = 0: x_t = x0, no step
    assert torch.allclose(result.x_t[1:].double(), forward_at(SIXTEEN_T[1:], x0[1:], noise[1:]), atol=2e-6)
    assert not torch.allclose(
        result.x_t[1:].double(), forward_at(SIXTEEN_T[1:] - 1, x0[1:], noise[1:]), atol=1e-4
    )
    assert torch.equal(result.landing_level, SIXTEEN_T)
    # eps_hat is the reparametrised noise of the landed x_t with abar[t] in float32.
    assert torch.allclose(result.eps_hat, reparametrised_noise(result.x_t, x0, ABAR[SIXTEEN_T]))


def test_faithful_overshoots_t_and_inflates_the_target() -> None:
    # Same model in faithful mode: t = 2 lands at 101 but eps_hat uses abar[2], so its noise part is
    # sqrt(1 - a101) / sqrt(1 - a2) ≈ 0.326 / 0.0494 ≈ 6.6 times the unit noise (spec §5.1: ≈ 6.5x at t = 2).
    # Corrected mode lands on 2: eps_hat = (sqrt(a2)(y - x0) + sqrt(1 - a2) n) / sqrt(1 - a2) with
    # y - x0 ≈ -sqrt(1 - a0) n, i.e. ≈ n (1 - sqrt(1 - a0) / sqrt(1 - a2)) = n (1 - 0.0292 / 0.0505) ≈ 0.42 n
    # (x0 itself is taken as the level-0 latent, and abar_0 = 0.99915 < 1): no inflation.
    x0, noise = x0_latents(64, seed=9), x0_latents(64, seed=10)
    t = torch.full((64,), 2)
    faithful = invert(x0, t, constant_noise_model(noise), ABAR, mode="faithful", steps=10, eta=0.0)
    assert torch.equal(faithful.landing_level, torch.full((64,), 101))
    assert torch.allclose(faithful.x_t.double(), forward_at(torch.full((64,), 101), x0, noise), atol=2e-6)
    ratio = float(faithful.eps_hat.std() / noise.std())
    assert 6.0 < ratio < 7.5
    corrected = invert(x0, t, constant_noise_model(noise), ABAR, mode="corrected", steps=10, eta=0.0)
    assert 0.38 < float(corrected.eps_hat.std() / noise.std()) < 0.46


def test_corrected_matches_the_closed_form_of_a_linear_model() -> None:
    # eps(x, s) = c x with c = 0.3 makes every DDIM step a scalar multiple of x:
    # x_s2 = x_s * (sqrt(a2 / a1) (1 - c sqrt(1 - a1)) + c sqrt(1 - a2)), a product over the path 0, Δ, ..., s, t.
    c = 0.3
    x0 = x0_latents(16, seed=11)
    result = invert(x0, SIXTEEN_T, lambda x, s, rows: c * x, ABAR, mode="corrected", steps=10, eta=0.0)
    for i, t in enumerate(SIXTEEN_T.tolist()):
        path = [level for level in corrected_levels(10) if level < t] + [t]
        factor = 1.0
        for lo, hi in zip(path[:-1], path[1:], strict=True):
            a1, a2 = float(ABAR64[lo]), float(ABAR64[hi])
            factor *= math.sqrt(a2 / a1) * (1 - c * math.sqrt(1 - a1)) + c * math.sqrt(1 - a2)
        assert torch.allclose(result.x_t[i].double(), factor * x0[i].double(), rtol=1e-5, atol=1e-6), t


# ------------------------------------------------------------------------------------ call counts
@pytest.mark.parametrize("mode", ["corrected", "faithful"])
@pytest.mark.parametrize("steps", [10, 5])
def test_sixteen_different_t_need_at_most_steps_plus_one_calls(mode: InversionMode, steps: int) -> None:
    x0 = x0_latents(16, seed=12)
    counter = CallCounter(conditioned_linear_model(x0_latents(16, seed=13)))
    result = invert(x0, SIXTEEN_T, counter, ABAR, mode=mode, steps=steps, eta=0.0)
    assert counter.calls == result.n_model_calls
    assert counter.calls <= steps + 1
    # t = 999 needs every grid step; corrected mode: steps - 1 grid steps + 1 batched final partial step.
    assert counter.calls == steps
    if mode == "corrected":
        assert counter.batch_sizes[-1] == 15  # one final call carries all 15 pairs with t > 0


def test_final_partial_steps_are_one_call_with_per_pair_timesteps() -> None:
    seen: list[list[int]] = []

    def eps_fn(x: Tensor, s: Tensor, rows: Tensor) -> Tensor:
        seen.append(s.tolist())
        return 0.1 * x

    t = torch.tensor([150, 50, 999, 0, 250])
    result = invert(x0_latents(5), t, eps_fn, ABAR, mode="corrected", steps=10, eta=0.0)
    # Grid steps 0→100 (t > 100: pairs 0, 2, 4), 100→200 (pairs 2, 4), then 200→300 ... 800→900 (pair 2);
    # final call from each pair's last level below t: 100, 0, 900, (t = 0 skipped), 200.
    assert seen[0] == [0, 0, 0] and seen[1] == [100, 100]
    assert seen[-1] == [100, 0, 900, 200]
    assert result.n_model_calls == len(seen) == 10


# ------------------------------------------------------------------------------ layout independence
@pytest.mark.parametrize("mode", ["corrected", "faithful"])
@pytest.mark.parametrize("eta", [0.0, 0.3])
def test_batched_inversion_equals_per_pair_and_any_order(mode: InversionMode, eta: float) -> None:
    x0, cond = x0_latents(16, seed=14), x0_latents(16, seed=15)
    pair_ids = list(range(100, 116))

    def gens(ids: list[int]) -> list[torch.Generator]:
        return pair_generators(seed=7, epoch=1, pair_indices=ids, stream="method")

    batched = invert(
        x0,
        SIXTEEN_T,
        conditioned_linear_model(cond),
        ABAR,
        mode=mode,
        steps=10,
        eta=eta,
        generators=gens(pair_ids),
    )
    for i in range(16):
        single = invert(
            x0[i : i + 1],
            SIXTEEN_T[i : i + 1],
            conditioned_linear_model(cond[i : i + 1]),
            ABAR,
            mode=mode,
            steps=10,
            eta=eta,
            generators=gens(pair_ids[i : i + 1]),
        )
        assert torch.allclose(single.x_t[0], batched.x_t[i], rtol=1e-6, atol=1e-6)
        assert torch.allclose(single.eps_hat[0], batched.eps_hat[i], rtol=1e-5, atol=1e-5)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    shuffled = invert(
        x0[perm],
        SIXTEEN_T[perm],
        conditioned_linear_model(cond[perm]),
        ABAR,
        mode=mode,
        steps=10,
        eta=eta,
        generators=gens([pair_ids[j] for j in perm.tolist()]),
    )
    assert torch.allclose(shuffled.x_t, batched.x_t[perm], rtol=1e-6, atol=1e-6)
    if eta > 0:  # the jitter really changed the result
        plain = invert(x0, SIXTEEN_T, conditioned_linear_model(cond), ABAR, mode=mode, steps=10, eta=0.0)
        assert (plain.x_t[1:] - batched.x_t[1:]).abs().amax(dim=(1, 2, 3)).min() > 1e-4
