"""SmPO (issue 14, part 1): the smoothed label, the release's loss and ReNoise inversion pinned with
hand-worked values, the corrected form through the shared soft-label loss, and the method trained on a
tiny SD1.5 from a pair set that carries smoothed labels."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from inpo import losses
from inpo.inversion import invert, scaled_linear_alphas_cumprod
from inpo.renoise_inversion import renoise_invert
from inpo.train.loop import train
from tests.train_helpers import make_config, make_world, read_losses, run_spec, state

ABAR = scaled_linear_alphas_cumprod()


def test_smoothed_label_is_a_sigmoid_of_the_score_gap_over_tau() -> None:
    """d = τ ln 3 → p = 3/4; the release's exp(n_w)/(exp(n_w)+exp(n_l)) with min-max normalised
    scores is the same with τ = max − min."""
    tau = 0.28201571106910706 - 0.11543526500463486
    assert float(losses.smoothed_label(torch.tensor([tau * math.log(3)]), tau)) == pytest.approx(0.75)
    s_w, s_l = 0.25, 0.2
    n_w, n_l = ((s - 0.11543526500463486) / tau for s in (s_w, s_l))
    release = math.exp(n_w) / (math.exp(n_w) + math.exp(n_l))
    assert float(losses.smoothed_label(torch.tensor([s_w - s_l]), tau)) == pytest.approx(release, rel=1e-6)


def test_release_loss_hand_values_and_its_two_identities() -> None:
    # z = 0.2, p = 3/4: softplus(−10 · 0.5 · 0.2) = ln(1 + e^−1)
    got = losses.smpo_release_loss(torch.tensor([0.2]), torch.tensor([0.75]))
    assert float(got) == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    g = torch.Generator().manual_seed(0)
    errs = [torch.rand(5, generator=g, dtype=torch.float64) for _ in range(4)]
    beta = 5000.0
    # p = 1 at β/10 is InPO's loss at β
    smpo = losses.smpo_release_loss(losses.preference_logits(*errs, beta / 10), torch.ones(5, dtype=torch.float64))
    inpo = losses.dpo_loss(losses.preference_logits(*errs, beta))
    assert float(smpo) == pytest.approx(float(inpo), rel=1e-12)
    # p = ½: ln 2 and a zero gradient whatever the errors
    leaves = [e.clone().requires_grad_(True) for e in errs]
    half = losses.smpo_release_loss(losses.preference_logits(*leaves, beta), torch.full((5,), 0.5, dtype=torch.float64))
    half.backward()
    assert float(half.detach()) == pytest.approx(math.log(2)) and all(torch.count_nonzero(e.grad) == 0 for e in leaves)


def test_corrected_form_is_the_soft_label_loss_zero_gradient_only_at_policy_equals_reference() -> None:
    p = torch.full((3,), 0.5)
    z0 = torch.zeros(3, requires_grad=True)
    losses.soft_label_loss(z0, p).backward()
    assert torch.count_nonzero(z0.grad) == 0
    z1 = torch.tensor([0.4, -0.2, 1.0], requires_grad=True)
    losses.soft_label_loss(z1, p).backward()
    assert bool((z1.grad != 0).all())  # a tie pulls z back to 0
    assert float(losses.soft_label_loss(z1.detach(), torch.ones(3))) == pytest.approx(float(losses.dpo_loss(z1.detach())))


def test_renoise_inversion_hand_worked_on_a_linear_eps_model() -> None:
    """eps(x) = x / 2, steps 10, first pair's t = 50: the grid values below 50 are −99 and 1 (two
    steps, two calls each); every row goes to the first pair's level, landing at 101."""
    x0 = torch.full((2, 1, 1, 1), 1.0)
    t = torch.tensor([50, 900])
    result = renoise_invert(x0, t, lambda x, ts, rows: x / 2, ABAR, steps=10)
    x = torch.tensor(1.0)
    for src, dst in ((ABAR[0], ABAR[1]), (ABAR[1], ABAR[101])):  # step(x, e) = √a'(x − √(1−a) e)/√a + √(1−a') e
        def step(e: torch.Tensor, x=x, src=src, dst=dst) -> torch.Tensor:
            return dst.sqrt() * (x - (1 - src).sqrt() * e) / src.sqrt() + (1 - dst).sqrt() * e

        e1 = x / 2
        e2 = step(e1) / 2
        x = step((e1 + e2) / 2)
    assert result.x_t.flatten().tolist() == pytest.approx([float(x)] * 2, rel=1e-6)
    assert result.n_model_calls == 4 and result.landing_level.tolist() == [101, 101]
    a16 = ABAR.to(torch.float16)[50]
    eps_hat = (x - 1.0 * float(a16.float().sqrt().half())) / float((1 - a16).sqrt().half())
    assert result.eps_hat.flatten().tolist() == pytest.approx([float(eps_hat)] * 2, rel=1e-3)


def test_renoise_with_an_x_independent_eps_is_the_releases_plain_ddim_inversion() -> None:
    """When eps does not depend on x, both ReNoise calls agree: the walk is InPO's faithful walk to
    the first pair's t, at twice the calls."""
    g = torch.Generator().manual_seed(1)
    x0, c = torch.randn(3, 2, 2, 2, generator=g), torch.randn(3, 2, 2, 2, generator=g)
    t = torch.tensor([640, 20, 999])
    ours = renoise_invert(x0, t, lambda x, ts, rows: c[rows], ABAR, steps=5)
    plain = invert(x0, torch.full((3,), 640), lambda x, ts, rows: c[rows], ABAR, mode="faithful", steps=5, eta=0.0)
    torch.testing.assert_close(ours.x_t, plain.x_t)
    torch.testing.assert_close(ours.eps_hat, plain.eps_hat)
    assert ours.n_model_calls == 2 * plain.n_model_calls == 10  # grid −199, 1, 201, 401, 601 lie below 640
    assert ours.landing_level.tolist() == [801] * 3


def _with_soft_labels(fixture: Path, out: Path) -> Path:
    """The fixture's shards with a soft_label_0 column (as `inpo relabel` writes it)."""
    out.mkdir(parents=True, exist_ok=True)
    for shard in sorted(fixture.glob("*.parquet")):
        table = pq.read_table(shard)
        p = [0.5 + 0.4 * ((i % 5) - 2) / 2 for i in range(table.num_rows)]  # 0.1 … 0.9
        pq.write_table(table.append_column("soft_label_0", pa.array(p, pa.float64())), out / shard.name)
    return out


@pytest.fixture(scope="module")
def soft_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("smpo")
    world = make_world(root, family="sd15")
    world["fixture"] = _with_soft_labels(world["fixture"], root / "soft-fixture")
    return world


@pytest.mark.parametrize("mode", ["faithful", "corrected"])
def test_smpo_trains_a_tiny_sd15_from_smoothed_labels(soft_world, tmp_path, mode) -> None:
    from inpo.data import read_pair_index
    from inpo.models import load_components

    cfg = make_config(
        tmp_path, soft_world, overrides=["methods=[smpo]", f"method.smpo.inversion.mode={mode}", "method.smpo.inversion.steps=5"]
    )
    index = read_pair_index(tmp_path / "outputs" / "prepare" / "pairs.parquet")
    assert index.soft_label_0 is not None and ((index.soft_label_0 >= 0) & (index.soft_label_0 <= 1)).all()
    base = state(load_components(cfg.model).unet)
    result = train(run_spec(cfg, "smpo"))
    after = state(result.policy)
    assert [k for k in base if torch.equal(base[k], after[k])] == []
    assert all(torch.equal(base[k], v) for k, v in state(result.reference.unet).items())
    first, second = read_losses(result.metrics_path)
    assert first == pytest.approx(math.log(2), abs=1e-5) and math.isfinite(second)  # z = 0 at step 0


def test_smpo_is_refused_before_loading_without_smoothed_labels_or_with_release_incompatible_settings(
    soft_world, tmp_path
) -> None:
    from inpo.errors import InputError
    from inpo.stages.train import preflight

    plain = make_world(tmp_path / "plain", family="sd15")
    with pytest.raises(InputError, match="smpo trains on smoothed labels"):
        preflight(make_config(tmp_path / "plain", plain, overrides=["methods=[smpo]"]))
    cfg = make_config(tmp_path, soft_world, overrides=["methods=[smpo]", "method.smpo.inversion.mode=faithful"])
    preflight(cfg)
    bad = make_config(tmp_path, soft_world, overrides=["methods=[smpo]", "method.smpo.inversion.mode=faithful", "method.smpo.inversion.eta=0.1"])
    with pytest.raises(InputError, match="faithful mode is the release's deterministic"):
        preflight(bad)


def test_prepare_refuses_a_soft_label_out_of_range_naming_file_and_row(soft_world, tmp_path) -> None:
    from inpo.config import DEFAULT_PARAMS, load_config
    from inpo.data.filtering import prepare_pairs
    from inpo.data.sources import PairDataError

    src = tmp_path / "bad"
    src.mkdir()
    shard = sorted(soft_world["fixture"].glob("*.parquet"))[0]
    table = pq.read_table(shard)
    p = table["soft_label_0"].to_pylist()
    p[3] = 1.5
    table = table.set_column(table.schema.get_field_index("soft_label_0"), "soft_label_0", pa.array(p, pa.float64()))
    pq.write_table(table, src / shard.name)
    cfg = load_config(DEFAULT_PARAMS, [f"data.source={src}", "world=pickapic"])
    with pytest.raises(PairDataError, match=rf"{shard.name}: row 3: soft_label_0 = 1.5; expected a number in \[0, 1\]"):
        prepare_pairs(cfg.data, tmp_path / "out", progress=False)
