"""v-prediction (SD2.x 768-v): the conversions, InPO's target in v, and every method training a tiny
SD2-architecture v-prediction model saved and loaded through the real loader (issue 13, part 1)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from inpo.inversion import reparametrised_noise, scaled_linear_alphas_cumprod
from inpo.parametrisation import EPSILON, V_PREDICTION
from inpo.train.loop import train
from tests.train_helpers import make_config, make_world, read_losses, run_spec, state

V = V_PREDICTION


def _abar(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_conversions_hand_worked() -> None:
    # abar_1 = 0.36 (sqrt 0.6, sqrt(1 - abar) 0.8), abar_2 = 0.64 (0.8, 0.6); x0 = 1, eps = 2:
    # t=1: x_t = 0.6 + 1.6 = 2.2, v = 0.6·2 − 0.8·1 = 0.4;  t=2: x_t = 0.8 + 1.2 = 2.0, v = 0.8·2 − 0.6·1 = 1.0
    abar = _abar(0.9, 0.36, 0.64)
    t = torch.tensor([1, 2])
    x0, eps = torch.ones(2, 1, 1, 1), torch.full((2, 1, 1, 1), 2.0)
    x_t = V.noised(x0, eps, t, abar)
    assert x_t.flatten().tolist() == pytest.approx([2.2, 2.0])
    v = V.target(x0, eps, t, abar)
    assert v.flatten().tolist() == pytest.approx([0.4, 1.0])
    assert V.eps(v, x_t, t, abar).flatten().tolist() == pytest.approx([2.0, 2.0])  # 0.6·0.4 + 0.8·2.2
    assert V.x0(v, x_t, t, abar).flatten().tolist() == pytest.approx([1.0, 1.0])  # 0.6·2.2 − 0.8·0.4
    assert EPSILON.x0(eps, x_t, t, abar).flatten().tolist() == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("t", [0, 250, 500, 999])
def test_round_trips_eps_v_x0_on_sd2s_schedule(t: int) -> None:
    abar = scaled_linear_alphas_cumprod().double()
    g = torch.Generator().manual_seed(t)
    x0, eps = torch.randn(3, 4, 2, 2, generator=g).double(), torch.randn(3, 4, 2, 2, generator=g).double()
    ts = torch.full((3,), t)
    x_t = V.noised(x0, eps, ts, abar)
    v = V.target(x0, eps, ts, abar)
    torch.testing.assert_close(V.eps(v, x_t, ts, abar), eps)
    torch.testing.assert_close(V.x0(v, x_t, ts, abar), x0)
    a = abar[t]  # and back: v from (eps, x0) at the same level
    torch.testing.assert_close((eps - (1 - a).sqrt() * x_t) / a.sqrt(), v)


@pytest.mark.parametrize("zero_snr", [False, True])
def test_inpo_v_target_lands_in_one_step_on_x0(zero_snr: bool) -> None:
    """For any x_t (e.g. an inverted one), v_hat = target(x0, eps_hat) is the output whose one-step
    prediction from x_t is exactly x0, and whose eps is InPO's eps_hat; with zero terminal SNR
    (abar_999 = 0) too, where v_hat = −x0 and eps_hat = x_t."""
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                          rescale_betas_zero_snr=zero_snr)
    abar = sched.alphas_cumprod.double()
    g = torch.Generator().manual_seed(1)
    x0, x_t = torch.randn(4, 4, 2, 2, generator=g).double(), torch.randn(4, 4, 2, 2, generator=g).double()
    ts = torch.tensor([1, 400, 998, 999])
    eps_hat = reparametrised_noise(x_t, x0, abar[ts])
    v_hat = V.target(x0, eps_hat, ts, abar)
    a = abar[ts].view(-1, 1, 1, 1)
    torch.testing.assert_close(a.sqrt() * x_t - (1 - a).sqrt() * v_hat, x0)  # the one step, no division
    torch.testing.assert_close(V.eps(v_hat, x_t, ts, abar), eps_hat)
    if zero_snr:
        assert float(abar[999]) == 0.0
        torch.testing.assert_close(v_hat[3], -x0[3]) and torch.testing.assert_close(eps_hat[3], x_t[3])


def test_v_mse_is_eps_mse_over_abar() -> None:
    """At fixed x_t an output error dv is an eps error sqrt(abar) dv: v-MSE = eps-MSE / abar_t, so β
    does not carry over from epsilon models (1 / abar_999 ≈ 215 on SD2's schedule)."""
    abar = scaled_linear_alphas_cumprod().double()
    g = torch.Generator().manual_seed(2)
    x_t, v1, v2 = (torch.randn(3, 4, 2, 2, generator=g).double() for _ in range(3))
    for t in (10, 500, 999):
        ts = torch.full((3,), t)
        mse_v = (v1 - v2).pow(2).mean()
        mse_eps = (V.eps(v1, x_t, ts, abar) - V.eps(v2, x_t, ts, abar)).pow(2).mean()
        assert float(mse_v) == pytest.approx(float(mse_eps / abar[t]), rel=1e-12)
    assert 1 / float(abar[999]) == pytest.approx(214.6, abs=0.1)


@pytest.fixture(scope="module")
def sd2_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd2")
    return make_world(root, family="sd2")


@pytest.mark.parametrize(
    ("method", "overrides", "first_loss"),
    [
        ("inpo", ["method.inpo.inversion.mode=corrected"], math.log(2)),
        ("inpo", ["method.inpo.inversion.mode=faithful"], math.log(2)),
        ("dpo", [], math.log(2)),
        ("sft", [], None),
        # λ_D = 1, λ_U = 3 at policy = reference: u = 1/2 for every image, (1/2 + 3/2) / 2 = 1
        ("kto", ["method.kto.lambda_undesirable=3.0"], 1.0),
    ],
)
def test_every_method_trains_a_tiny_v_prediction_sd2(sd2_world, tmp_path, method, overrides, first_loss):
    from inpo.models import load_components

    cfg = make_config(tmp_path, sd2_world, family="sd2", overrides=overrides)
    components = load_components(cfg.model)
    assert components.parametrisation is V_PREDICTION and components.unet.config.use_linear_projection
    base = state(components.unet)
    result = train(run_spec(cfg, method))
    after = state(result.policy)
    assert [k for k in base if torch.equal(base[k], after[k])] == [], "parameters not updated"
    ref = state(result.reference.unet)
    assert all(torch.equal(base[k], ref[k]) for k in base), "the reference changed"
    losses = read_losses(result.metrics_path)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    if first_loss is not None:
        assert losses[0] == pytest.approx(first_loss, abs=1e-5)


def test_sd2_family_refuses_an_sd15_unet(sd2_world, tmp_path) -> None:
    from inpo.config.sections import ModelConfig
    from inpo.models import load_components

    sd15 = make_world(tmp_path, family="sd15")["model"]
    with pytest.raises(ValueError, match="model.family='sd2' expects a UNet with use_linear_projection=True"):
        load_components(ModelConfig(family="sd2", pretrained=str(sd15)))
    with pytest.raises(ValueError, match="model.family='sd15' expects a UNet with use_linear_projection=False"):
        load_components(ModelConfig(family="sd15", pretrained=str(sd2_world["model"])))


def test_inpo_inverts_with_the_implied_eps_and_regresses_on_v_hat() -> None:
    """The InPO objective on a closed-form v-predictor: its reference error is the MSE to
    v_hat = sqrt(abar_t) eps_hat − sqrt(1 − abar_t) x0, with x_t and eps_hat from an inversion that
    steps with eps = sqrt(abar) v + sqrt(1 − abar) x (both written out here by hand)."""
    import dataclasses
    from types import SimpleNamespace

    from inpo import inversion
    from inpo.config.sections import MethodsConfig
    from inpo.losses import per_image_mse
    from inpo.methods import build_method
    from inpo.methods.base import MethodContext, PairDraws

    abar = scaled_linear_alphas_cumprod()

    def v_model(x: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        return 0.3 * x + 1e-3 * t.view(-1, 1, 1, 1).to(x)

    def eps_by_hand(x: torch.Tensor, ts: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        a = abar[ts].view(-1, 1, 1, 1)
        return a.sqrt() * v_model(x, ts, None) + (1 - a).sqrt() * x

    methods = MethodsConfig()
    inv = dataclasses.replace(methods.inpo.inversion, eta=0.0, steps=5)
    method = build_method("inpo", dataclasses.replace(methods, inpo=dataclasses.replace(methods.inpo, inversion=inv)))
    method._ctx = MethodContext(v_model, v_model, v_model, abar, None, 2, parametrisation=V)
    method.inverter, method.cache, method.uncond = v_model, None, None  # what prepare() sets
    g = torch.Generator().manual_seed(3)
    x0_w, x0_l = torch.randn(2, 4, 2, 2, generator=g), torch.randn(2, 4, 2, 2, generator=g)
    cond = SimpleNamespace(select=lambda rows: cond, time_ids=None)
    batch = SimpleNamespace(x0_w=x0_w, x0_l=x0_l, cond2=cond, fields={})
    t = torch.tensor([100, 700])
    draws = PairDraws(t, t, torch.zeros_like(x0_w), torch.zeros_like(x0_w), [], [])
    out = method.objective(batch, draws)

    x0, t2 = torch.cat([x0_w, x0_l]), torch.cat([t, t])
    r = inversion.invert(x0, t2, eps_by_hand, abar, mode="corrected", steps=5, eta=0.0)
    a = abar[t2].view(-1, 1, 1, 1)
    v_hat = a.sqrt() * r.eps_hat - (1 - a).sqrt() * x0
    err = per_image_mse(v_model(r.x_t, t2, None), v_hat)
    assert out.metrics["err_ref_w"] == pytest.approx(float(err[:2].mean()), rel=1e-5)
    assert out.metrics["err_ref_l"] == pytest.approx(float(err[2:].mean()), rel=1e-5)
    eps_target = float(per_image_mse(v_model(r.x_t, t2, None), r.eps_hat)[:2].mean())
    assert abs(eps_target - out.metrics["err_ref_w"]) > 0.1 * eps_target  # an eps target would be caught


def test_sd2_samples_through_the_schedulers_v_prediction(sd2_world) -> None:
    """Generation steps diffusers' schedulers with the model's own prediction_type (from its config),
    so the evaluation stages sample a v-prediction model as its pipeline would."""
    from inpo.config.sections import ModelConfig
    from inpo.models import load_components
    from inpo.sampling import make_scheduler, sample_images

    components = load_components(ModelConfig(family="sd2", pretrained=str(sd2_world["model"])))
    for name in ("ddim", "euler", "dpm"):
        assert make_scheduler(name, components.scheduler.config).config.prediction_type == "v_prediction"
    images = sample_images(components, components.unet, ["red cat", "blue dog"], [0, 1], steps=3, guidance=2.0)
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()
    again = sample_images(components, components.unet, ["red cat"], [0], steps=3, guidance=2.0)
    torch.testing.assert_close(again[0], images[0])  # a fixed seed is the same image


def test_check_sizes_sd21_at_its_real_size_from_configs_only(capsys) -> None:
    """``inpo check --shapes-only`` on the shipped SD2.1 configs (no weights): the published sizes,
    and the memory estimate's formula from them (AdamW 16 B per trainable parameter, bf16 copies)."""
    from inpo.cli import main

    root = Path(__file__).resolve().parents[1]
    args = ["check", "--shapes-only", "model.family=sd2", f"model.pretrained={root}/configs/models/sd21-768-v"]
    assert main([*args, "train.mixed_precision=bf16"]) in (0, None)
    out = capsys.readouterr().out
    assert "UNet 865,910,724 parameters" in out  # stabilityai/stable-diffusion-2-1's UNet
    assert "frozen encoders 424,041,703 × 2 B" in out  # OpenCLIP-H text 340,387,840 + VAE 83,653,863
    gib = (865_910_724 * 16 + 865_910_724 * 2 + 424_041_703 * 2) / 1024**3
    assert f"~{gib:.2f} GiB" in out and "scorers: not loaded" in out
