"""Flow matching (rectified flow, SD3-style): the parametrisation, InPO's Euler inversion and
reparametrised velocity pinned with closed-form velocity models, and every method training a tiny
flow-matching model saved and loaded through the real loader (issue 13, part 2)."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

from inpo.flow_inversion import euler_invert, first_level_at_least, flow_invert, reparametrised_velocity
from inpo.parametrisation import FLOW_MATCHING, levels_of
from inpo.train.loop import train
from tests.train_helpers import WORDS, make_config, make_world, read_losses, run_spec, state

F = FLOW_MATCHING


def test_flow_parametrisation_hand_worked() -> None:
    # sigma = 0.25, x0 = 1, noise = 3: x_t = 0.75 + 0.75 = 1.5, v = 3 - 1 = 2,
    # noise back = 1.5 + 0.75·2 = 3, x0 back = 1.5 - 0.25·2 = 1, the network's timestep 250
    levels = torch.tensor([0.1, 0.25, 1.0])
    t = torch.tensor([1])
    x0, noise = torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 3.0)
    x_t = F.noised(x0, noise, t, levels)
    v = F.target(x0, noise, t, levels)
    assert (float(x_t), float(v)) == (1.5, 2.0)
    assert (float(F.eps(v, x_t, t, levels)), float(F.x0(v, x_t, t, levels))) == (3.0, 1.0)
    assert F.model_timestep(t, levels).tolist() == [250.0]


def test_levels_are_the_schedulers_shifted_sigmas_ascending() -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    levels = levels_of(sched)
    assert levels.shape == (1000,) and bool((levels[1:] > levels[:-1]).all()) and float(levels[-1]) == 1.0
    s = 1 / 1000  # index 0: sigma (t+1)/T = 0.001 shifted, 3 s / (1 + 2 s)
    assert float(levels[0]) == pytest.approx(3 * s / (1 + 2 * s), rel=1e-5)
    torch.testing.assert_close(F.model_timestep(torch.arange(1000), levels), sched.timesteps.flip(0))


def test_euler_inversion_hand_worked_on_a_linear_field() -> None:
    """v(x, s) = x, 4 steps: to sigma 0.6 the steps are 0.25, 0.25, 0.1 (the last one partial, landing
    on 0.6 exactly): x_t = x0 · 1.25 · 1.25 · 1.1; to sigma 1: x0 · 1.25⁴; 4 batched calls."""
    seen: list[list[float]] = []

    def v_fn(x, sigma, rows):
        seen.append([round(float(s), 6) for s in sigma])
        return x

    x0 = torch.full((2, 1, 1, 1), 2.0)
    x_t, calls = euler_invert(x0, torch.tensor([0.6, 1.0]), v_fn, steps=4)
    assert x_t.flatten().tolist() == pytest.approx([2 * 1.25 * 1.25 * 1.1, 2 * 1.25**4])
    assert calls == 4 and seen == [[0.0, 0.0], [0.25, 0.25], [0.5, 0.5], [0.75]]


def test_a_straight_flow_is_inverted_exactly_and_its_target_is_its_velocity() -> None:
    """A model whose velocity is a constant c is an exact straight flow: Euler lands on x0 + sigma c,
    v_hat = c, one step back from x_t returns x0, and Euler sampling down the same grid returns x0."""
    g = torch.Generator().manual_seed(0)
    x0, c = torch.randn(3, 2, 2, 2, generator=g), torch.randn(3, 2, 2, 2, generator=g)
    sigma = torch.tensor([0.05, 0.5, 0.93])
    result = flow_invert(x0, sigma, lambda x, s, rows: c[rows], steps=7)
    torch.testing.assert_close(result.x_t, x0 + sigma.view(-1, 1, 1, 1) * c)
    torch.testing.assert_close(result.v_hat, c)
    torch.testing.assert_close(result.x_t - sigma.view(-1, 1, 1, 1) * result.v_hat, x0)
    back, _ = euler_invert(result.x_t, sigma, lambda x, s, rows: -c[rows], steps=7)  # dx/d(-s) = -c
    torch.testing.assert_close(back, x0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        reparametrised_velocity(x0, x0, torch.tensor([0.0, 0.5, 0.5]))


def test_inpo_objective_on_a_straight_flow_has_zero_error() -> None:
    """A model whose velocity is one constant c for every input is an exact straight flow, so it is
    its own InPO target: the reference's errors are 0 (an eps-type target would not be). The
    network is called with sigma · 1000; a level below sigma_min is raised to it."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from inpo.config.sections import MethodsConfig
    from inpo.methods import build_method
    from inpo.methods.base import MethodContext, PairDraws

    levels = levels_of(FlowMatchEulerDiscreteScheduler(shift=3.0))
    c = torch.randn(1, 2, 2, 2, generator=torch.Generator().manual_seed(1))
    timesteps: list[torch.Tensor] = []

    def model(x, net_t, cond):
        timesteps.append(net_t)
        return c.expand_as(x)

    m = MethodsConfig()
    inv = dataclasses.replace(m.inpo.inversion, eta=0.0, steps=5)
    method = build_method("inpo", dataclasses.replace(m, inpo=dataclasses.replace(m.inpo, inversion=inv)))
    method._ctx = MethodContext(model, model, model, levels, None, 2, parametrisation=F)
    method.inverter, method.cache, method.uncond = model, None, None  # what prepare() sets
    method.t_min = first_level_at_least(levels, inv.sigma_min)
    cond = SimpleNamespace(select=lambda rows: cond, time_ids=None)
    x0 = torch.randn(4, 2, 2, 2, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([3, 800])  # index 3: sigma 0.012 < sigma_min 0.02, raised
    draws = PairDraws(t, t, torch.zeros(2, 2, 2, 2), torch.zeros(2, 2, 2, 2), [], [])
    out = method.objective(SimpleNamespace(x0_w=x0[:2], x0_l=x0[2:], cond2=cond, fields={}), draws)
    assert out.metrics["err_ref_w"] == pytest.approx(0.0, abs=1e-10)
    assert out.metrics["err_ref_l"] == pytest.approx(0.0, abs=1e-10)
    assert out.metrics["sigma_raised_to_min"] == 0.5
    assert float(timesteps[0][0]) == 0.0 and float(timesteps[-1].max()) <= 1000.0  # sigma · 1000
    assert out.metrics["loss"] == pytest.approx(math.log(2), abs=1e-6)


@pytest.mark.parametrize(
    ("setting", "named"),
    [({"mode": "faithful"}, "inversion.mode"), ({"eta": 0.1}, "inversion.eta")],
)
def test_flow_inversion_settings_are_refused(setting, named) -> None:
    from inpo.config.sections import InversionConfig
    from inpo.errors import InputError
    from inpo.methods.inpo import check_flow_inversion

    with pytest.raises(InputError, match=named):
        check_flow_inversion(dataclasses.replace(InversionConfig(eta=0.0), **setting))


@pytest.fixture(scope="module")
def flow_world(tmp_path_factory):
    from inpo.testing import write_tiny_pixel

    root = tmp_path_factory.mktemp("flow")
    world = make_world(root, family="sd15")  # the fixture pairs (its SD1.5 model is not used)
    world["model"] = write_tiny_pixel(root / "flow-model", words=WORDS, flow_shift=3.0)
    return world


FLOW = ["world=pickapic", "method.inpo.inversion.eta=0.0", "sample.scheduler=flow_euler"]


@pytest.mark.parametrize(
    ("method", "first_loss"),
    [("inpo", math.log(2)), ("dpo", math.log(2)), ("sft", None), ("kto", 1.0)],
)
def test_every_method_trains_a_tiny_flow_matching_model(flow_world, tmp_path, method, first_loss):
    from inpo.models import load_components

    overrides = [*FLOW, "method.kto.lambda_undesirable=3.0"]  # KTO at policy = reference: (1/2 + 3/2) / 2
    cfg = make_config(tmp_path, flow_world, family="toy", overrides=overrides)
    components = load_components(cfg.model)
    assert components.parametrisation is F and components.vae is None
    base = state(components.unet)
    result = train(run_spec(cfg, method))
    after = state(result.policy)
    assert [k for k in base if torch.equal(base[k], after[k])] == [], "parameters not updated"
    assert all(torch.equal(base[k], v) for k, v in state(result.reference.unet).items()), "the reference changed"
    losses = read_losses(result.metrics_path)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    if first_loss is not None:
        assert losses[0] == pytest.approx(first_loss, abs=1e-5)


def test_flow_models_sample_with_the_flow_scheduler_only(flow_world) -> None:
    from inpo.config.sections import ModelConfig
    from inpo.models import load_components
    from inpo.sampling import sample_images

    components = load_components(ModelConfig(family="toy", pretrained=str(flow_world["model"])))
    with pytest.raises(ValueError, match="'ddim' cannot sample a flow-matching model; use one of flow_euler"):
        sample_images(components, components.unet, ["red cat"], [0], steps=2, guidance=1.0, scheduler="ddim")
    images = sample_images(
        components, components.unet, ["red cat", "blue dog"], [0, 1], steps=3, guidance=2.0, scheduler="flow_euler"
    )
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()
    with pytest.raises(ValueError, match="use Components.levels"):
        _ = components.alphas_cumprod


def test_train_refuses_ddim_inversion_settings_on_a_flow_model_before_loading(flow_world, tmp_path) -> None:
    from inpo.errors import InputError
    from inpo.stages.train import preflight

    cfg = make_config(tmp_path, flow_world, family="toy", overrides=["world=pickapic"])  # eta 0.1
    with pytest.raises(InputError, match="method.inpo.inversion.eta: flow-matching models invert deterministically"):
        preflight(cfg)
    preflight(make_config(tmp_path, flow_world, family="toy", overrides=FLOW))


def test_logit_normal_timesteps_follow_sd3s_density() -> None:
    """u = sigmoid(N(0, 1)) → t = floor(1000 u): median 499.5, a quarter below
    1000 · sigmoid(-0.6745) = 337.5; the same pair draws the same t again; uniform is unchanged."""
    from inpo.methods.base import TimestepSampling, draw_pairs

    logit = TimestepSampling(0, 999, "logit_normal", 0.0, 1.0)
    ts = draw_pairs(0, 0, list(range(4000)), (1, 1, 1), logit).t.float()
    assert float(ts.median()) == pytest.approx(499.5, abs=25)
    assert float((ts < 337.5).float().mean()) == pytest.approx(0.25, abs=0.02)
    assert torch.equal(draw_pairs(0, 0, [7, 3], (1, 1, 1), logit).t, draw_pairs(0, 0, [3, 7], (1, 1, 1), logit).t.flip(0))
    shifted = draw_pairs(0, 0, list(range(2000)), (1, 1, 1), TimestepSampling(0, 999, "logit_normal", 1.0, 1.0)).t
    assert float(shifted.float().mean()) > 600  # mean 1: more noise
    uniform = draw_pairs(0, 0, list(range(4000)), (1, 1, 1), TimestepSampling(100, 199)).t
    assert int(uniform.min()) == 100 and int(uniform.max()) == 199


def test_velocity_mse_is_eps_mse_over_one_minus_sigma_squared() -> None:
    levels = torch.tensor([0.2, 0.5, 0.9])
    g = torch.Generator().manual_seed(4)
    x_t, v1, v2 = (torch.randn(3, 2, 2, 2, generator=g).double() for _ in range(3))
    for t in range(3):
        ts = torch.full((3,), t)
        mse_eps = (F.eps(v1, x_t, ts, levels.double()) - F.eps(v2, x_t, ts, levels.double())).pow(2).mean()
        assert float((v1 - v2).pow(2).mean()) == pytest.approx(float(mse_eps) / (1 - float(levels[t])) ** 2)
