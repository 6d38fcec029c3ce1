"""Faithful mode reproduces the diffusers-0.20 reference vectors (tests/data/inpo_faithful_v020.json).

The file (see tests/data/inpo_faithful_v020.README.md) was made with diffusers 0.20.0's
DDIMInverseScheduler/DDIMScheduler and the closed-form eps model eps(x, g) = 0.3 x + 0.001 g, eta = 0.
Comparison rule from the file: err = max|mine - ref| / max|ref| <= recommended_rel_tol per case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from inpo.inversion import (
    InversionResult,
    faithful_grid,
    faithful_jitter_std,
    faithful_jitter_variance,
    faithful_landing_level,
    fp16_reparametrisation_coefficients,
    inversion_jitter_variance,
    invert,
    reparametrised_noise,
    scaled_linear_alphas_cumprod,
)

VECTORS = Path(__file__).parent / "data" / "inpo_faithful_v020.json"


def _tensor(obj: dict[str, Any]) -> Tensor:
    return torch.tensor(obj["data"], dtype=getattr(torch, obj["dtype"]))


def _rel_err(mine: Tensor, ref: Tensor) -> float:
    return float((mine - ref).abs().max() / ref.abs().max())


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    return json.loads(VECTORS.read_text())


@pytest.fixture(scope="module")
def batched_run(vectors: dict[str, Any]) -> tuple[InversionResult, list[list[list[int]]]]:
    """All 12 cases x 2 samples in ONE micro-batch with per-pair t (24 rows); records each row's model timesteps."""
    abar = _tensor(vectors["alphas_cumprod_fp32"])
    x0 = _tensor(vectors["x0"]["tensor"])
    cases = vectors["cases"]
    coef_x, coef_g = vectors["eps_model"]["coef_x"], vectors["eps_model"]["coef_g"]
    x0_batch = torch.cat([x0] * len(cases))
    t = torch.tensor([c["t"] for c in cases], dtype=torch.long).repeat_interleave(x0.shape[0])
    seen: list[list[int]] = [[] for _ in range(x0_batch.shape[0])]

    def eps_fn(x: Tensor, timesteps: Tensor, rows: Tensor) -> Tensor:
        for row, g in zip(rows.tolist(), timesteps.tolist(), strict=True):
            seen[row].append(g)
        return coef_x * x + coef_g * timesteps.to(torch.float32).view(-1, 1, 1, 1)

    result = invert(x0_batch, t, eps_fn, abar, mode="faithful", steps=10, eta=0.0)
    per_case = [[seen[2 * i], seen[2 * i + 1]] for i in range(len(cases))]
    return result, per_case


def test_schedule_and_grid_match_the_file(vectors: dict[str, Any]) -> None:
    # The diffusers recipe (float32 linspace of sqrt betas, squared, 1 - beta, CPU cumprod) is bit-exact.
    assert torch.equal(scaled_linear_alphas_cumprod(), _tensor(vectors["alphas_cumprod_fp32"]))
    assert faithful_grid(10) == _tensor(vectors["inverse_scheduler_timesteps"]).tolist()
    assert faithful_grid(10) == [-99, 1, 101, 201, 301, 401, 501, 601, 701, 801]


def test_batched_faithful_run_used_ten_calls(batched_run: tuple[InversionResult, Any]) -> None:
    # 24 rows with 12 different t, t up to 999 > 801: every one of the 10 grid steps runs once, batched.
    assert batched_run[0].n_model_calls == 10


@pytest.mark.parametrize("case_index", range(12))
def test_case_x_t_eps_hat_timesteps_landing(
    vectors: dict[str, Any], batched_run: tuple[InversionResult, list[list[list[int]]]], case_index: int
) -> None:
    case = vectors["cases"][case_index]
    result, timesteps = batched_run
    rows = slice(2 * case_index, 2 * case_index + 2)
    tol = case["recommended_rel_tol"]
    assert _rel_err(result.x_t[rows], _tensor(case["x_t"])) <= tol["x_t"]
    assert _rel_err(result.eps_hat[rows], _tensor(case["eps_hat_fp16abar"])) <= tol["eps_hat"]
    assert timesteps[case_index] == [case["model_timesteps"]] * 2
    assert len(case["model_timesteps"]) == case["n_model_calls"]
    assert result.landing_level[rows].tolist() == [case["landing_level"]] * 2
    assert faithful_landing_level(case["t"], 10) == case["landing_level"]


@pytest.mark.parametrize("case_index", range(12))
def test_variant_a_is_told_apart_from_variant_b(
    vectors: dict[str, Any], batched_run: tuple[InversionResult, Any], case_index: int
) -> None:
    # Variant (b) (float32 abar) computed from our x_t matches the file's (b) and misses (a) by far more than
    # the tolerance: the comparison would catch an implementation that forgot the float16 rounding.
    case = vectors["cases"][case_index]
    result = batched_run[0]
    rows = slice(2 * case_index, 2 * case_index + 2)
    abar = _tensor(vectors["alphas_cumprod_fp32"])
    x0 = _tensor(vectors["x0"]["tensor"])
    tol = case["recommended_rel_tol"]["eps_hat"]
    variant_b = reparametrised_noise(result.x_t[rows], x0, abar[case["t"]])
    assert _rel_err(variant_b, _tensor(case["eps_hat_fp32abar"])) <= tol
    assert _rel_err(variant_b, _tensor(case["eps_hat_fp16abar"])) > 10 * tol
    assert _rel_err(result.eps_hat[rows], _tensor(case["eps_hat_fp32abar"])) > 10 * tol


def test_fp16_coefficients_equal_the_stored_scalars(vectors: dict[str, Any]) -> None:
    abar = _tensor(vectors["alphas_cumprod_fp32"])
    t = torch.tensor([c["t"] for c in vectors["cases"]])
    sqrt_a, sqrt_b = fp16_reparametrisation_coefficients(abar, t)
    assert sqrt_a.tolist() == [c["sqrt_abar_t_fp16"] for c in vectors["cases"]]
    assert sqrt_b.tolist() == [c["sqrt_one_minus_abar_t_fp16"] for c in vectors["cases"]]


def test_jitter_std_per_step_official_and_fp32(vectors: dict[str, Any]) -> None:
    abar = _tensor(vectors["alphas_cumprod_fp32"])
    for entry in vectors["jitter_per_grid_step"]:
        g = entry["g"]
        assert float(faithful_jitter_variance(g, 10, abar)) == pytest.approx(entry["var_official"], rel=1e-6)
        # Released eta = 0.1: std = 0.1 * sqrt(var) with the float16 square root.
        assert float(0.1 * faithful_jitter_std(g, 10, abar)) == pytest.approx(
            entry["jitter_std_official"], rel=1e-6
        )
        src = torch.tensor(max(g, 0))  # a negative source level uses abar[0]
        dst = torch.tensor(entry["destination_level"])
        var32 = inversion_jitter_variance(abar[src], abar[dst])
        assert float(var32) == pytest.approx(entry["var_fp32"], rel=1e-6)
        assert float(0.1 * var32**0.5) == pytest.approx(entry["jitter_std_fp32"], rel=1e-6)
    # The float16 cast makes the first two stds 8.5 % and 7 % smaller (README): 0.00189 vs 0.00206, 0.00380 vs 0.00410.
    first, second = vectors["jitter_per_grid_step"][:2]
    assert first["jitter_std_official"] / first["jitter_std_fp32"] == pytest.approx(0.915, abs=0.005)
    assert second["jitter_std_official"] / second["jitter_std_fp32"] == pytest.approx(0.928, abs=0.005)


def test_single_case_call_count(vectors: dict[str, Any]) -> None:
    # Inverted alone, each case makes exactly its number of model calls (t = 2 → grid values -99, 1 → 2 calls).
    abar = _tensor(vectors["alphas_cumprod_fp32"])
    x0 = _tensor(vectors["x0"]["tensor"])
    for case in vectors["cases"]:
        t = torch.full((2,), case["t"], dtype=torch.long)
        result = invert(
            x0,
            t,
            lambda x, g, rows: 0.3 * x + 0.001 * g.float().view(-1, 1, 1, 1),
            abar,
            mode="faithful",
            steps=10,
            eta=0.0,
        )
        assert result.n_model_calls == case["n_model_calls"]
        assert _rel_err(result.x_t, _tensor(case["x_t"])) <= case["recommended_rel_tol"]["x_t"]
