"""DDIM inversion (spec §5, §6): the per-step jitter, the cache path, the round trip, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from inpo.inversion import (
    corrected_grid_latents,
    corrected_levels,
    corrected_source_index,
    faithful_jitter_std,
    final_partial_step,
    invert,
    reparametrised_noise,
)
from inpo.rng import pair_generators, randn_per_pair

from .inversion_helpers import (
    ABAR,
    ABAR64,
    SIXTEEN_T,
    CallCounter,
    conditioned_linear_model,
    constant_noise_model,
    x0_latents,
)


# ---------------------------------------------------------------------------------------- jitter
def _propagate(path_abar: list[float], stds: list[float], z: Tensor, x0: Tensor, noise: Tensor) -> Tensor:
    """Expected x after jittered steps with the constant-noise model, in float64.

    Step k: x_{k+1} = sqrt(a_{k+1}/a_k) x_k + (sqrt(1 - a_{k+1}) - sqrt(a_{k+1}/a_k) sqrt(1 - a_k)) n + std_k z_k.
    """
    x = x0.double()  # the walk starts from x0 itself, treated as the level-0 latent
    for k, std in enumerate(stds):
        a1, a2 = path_abar[k], path_abar[k + 1]
        x = math.sqrt(a2 / a1) * (x - math.sqrt(1 - a1) * noise.double()) + math.sqrt(1 - a2) * noise.double()
        x = x + std * z[k].double()
    return x


def test_faithful_jitter_std_per_step_is_applied() -> None:
    # t = 301: steps g = -99, 1, 101, 201 (sources abar[0], abar[1], abar[101], abar[201]; landing 301).
    # Each step adds eta * faithful_jitter_std(g) * z, z the pair's next randn; released stds (eta 0.1):
    # 0.00189, 0.00380, 0.0261, 0.0362 (the test vectors' jitter_std_official).
    eta = 0.5
    x0, noise = x0_latents(1, seed=16), x0_latents(1, seed=17)
    result = invert(
        x0,
        torch.tensor([301]),
        constant_noise_model(noise),
        ABAR,
        mode="faithful",
        steps=10,
        eta=eta,
        generators=pair_generators(3, 0, [5], "method"),
    )
    official = [0.00188965885899961, 0.0038024901878088713, 0.026123046875, 0.03618163987994194]
    stds = [eta * float(faithful_jitter_std(g, 10, ABAR)) for g in (-99, 1, 101, 201)]
    assert stds == pytest.approx([eta / 0.1 * s for s in official], rel=1e-6)
    gen = pair_generators(3, 0, [5], "method")
    z = torch.stack([randn_per_pair(gen, tuple(x0.shape[1:]))[0] for _ in range(4)])
    path = [float(ABAR64[level]) for level in (0, 1, 101, 201, 301)]
    expected = _propagate(path, stds, z, x0[0], noise[0])
    assert torch.allclose(result.x_t[0].double(), expected, atol=2e-6)


def test_corrected_jitter_std_per_step_is_applied() -> None:
    # t = 250, steps 10: 0→100, 100→200 on the grid, then the partial step 200→250; std = eta sqrt(var(s→s2))
    # with the float32 formula var = (1 - a_s)/(1 - a_s2) (1 - a_s2/a_s).
    eta = 0.5
    x0, noise = x0_latents(1, seed=18), x0_latents(1, seed=19)
    result = invert(
        x0,
        torch.tensor([250]),
        constant_noise_model(noise),
        ABAR,
        mode="corrected",
        steps=10,
        eta=eta,
        generators=pair_generators(3, 0, [6], "method"),
    )
    levels = [0, 100, 200, 250]
    stds = []
    for lo, hi in zip(levels[:-1], levels[1:], strict=True):
        a1, a2 = float(ABAR64[lo]), float(ABAR64[hi])
        stds.append(eta * math.sqrt((1 - a1) / (1 - a2) * (1 - a2 / a1)))
    gen = pair_generators(3, 0, [6], "method")
    z = torch.stack([randn_per_pair(gen, tuple(x0.shape[1:]))[0] for _ in range(3)])
    expected = _propagate([float(ABAR64[level]) for level in levels], stds, z, x0[0], noise[0])
    assert torch.allclose(result.x_t[0].double(), expected, atol=2e-6)


# --------------------------------------------------------------------------------- cache path
def test_cached_grid_latents_plus_final_step_equal_invert() -> None:
    x0, cond = x0_latents(16, seed=20), x0_latents(16, seed=21)
    model = CallCounter(conditioned_linear_model(cond))
    latents = corrected_grid_latents(x0, model, ABAR, steps=10)
    assert latents.shape == (10, *x0.shape) and model.calls == 9 and torch.equal(latents[0], x0)
    source = corrected_source_index(SIXTEEN_T, 10)
    levels = torch.tensor(corrected_levels(10))[source]
    x_level = latents[source, torch.arange(16)]
    cached_x_t, calls = final_partial_step(x_level, levels, SIXTEEN_T, model, ABAR)
    assert calls == 1 and model.calls == 10  # a cached step costs one call
    direct = invert(x0, SIXTEEN_T, conditioned_linear_model(cond), ABAR, mode="corrected", steps=10, eta=0.0)
    assert torch.equal(cached_x_t, direct.x_t)
    assert torch.equal(reparametrised_noise(cached_x_t, x0, ABAR[SIXTEEN_T]), direct.eps_hat)


def test_final_partial_step_refuses_t_below_level() -> None:
    with pytest.raises(ValueError, match="t >= level"):
        final_partial_step(x0_latents(1), torch.tensor([300]), torch.tensor([200]), lambda x, s, r: x, ABAR)


# ---------------------------------------------------------------------------------- round trip
def test_inversion_then_ddim_sampling_returns_x0_with_shrinking_error() -> None:
    # eps(x, s) = 0.3 x + 0.0005 s. Invert x0 to t = 640 (corrected, eta 0), then DDIM-sample back down the same
    # levels (t, s, ..., Δ, 0), evaluating eps at the upper level of each step (written out here, float64).
    # The two directions use eps at opposite ends of each step, so the mismatch is a first-order
    # discretisation error: measured 0.39, 0.20, 0.042, 0.010 for 5, 10, 50, 200 steps.
    x0 = x0_latents(3, seed=22)
    t = 640
    errors = []
    for steps in (5, 10, 50, 200):
        inverted = invert(
            x0,
            torch.full((3,), t),
            lambda x, s, rows: 0.3 * x + 0.0005 * s.float().view(-1, 1, 1, 1),
            ABAR,
            mode="corrected",
            steps=steps,
            eta=0.0,
        )
        path = [level for level in corrected_levels(steps) if level < t] + [t]
        x = inverted.x_t.double()
        for hi, lo in zip(path[::-1][:-1], path[::-1][1:], strict=True):
            eps = 0.3 * x + 0.0005 * hi
            x0_pred = (x - (1 - ABAR64[hi]).sqrt() * eps) / ABAR64[hi].sqrt()
            x = ABAR64[lo].sqrt() * x0_pred + (1 - ABAR64[lo]).sqrt() * eps
        errors.append(float((x - x0.double()).abs().max()))
    assert errors == sorted(errors, reverse=True)
    assert errors[3] < 0.02 and errors[0] / errors[3] > 20  # 40x more steps, ~40x smaller error


# -------------------------------------------------------------------------------------- errors
def test_bad_inputs_are_refused() -> None:
    x0, t = x0_latents(2), torch.tensor([10, 20])
    model = lambda x, s, rows: x  # noqa: E731
    with pytest.raises(ValueError, match="needs one torch.Generator per pair"):
        invert(x0, t, model, ABAR, mode="corrected", steps=10, eta=0.1)
    with pytest.raises(ValueError, match="one generator per pair"):
        invert(
            x0,
            t,
            model,
            ABAR,
            mode="corrected",
            steps=10,
            eta=0.1,
            generators=pair_generators(0, 0, [1], "method"),
        )
    with pytest.raises(
        ValueError, match="unknown inversion mode 'exact'; expected one of faithful, corrected"
    ):
        invert(x0, t, model, ABAR, mode="exact", steps=10, eta=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"t must lie in 0..999"):
        invert(x0, torch.tensor([10, 1000]), model, ABAR, mode="corrected", steps=10, eta=0.0)
    with pytest.raises(ValueError, match="inversion steps must be in 1..1000"):
        invert(x0, t, model, ABAR, mode="faithful", steps=0, eta=0.0)
