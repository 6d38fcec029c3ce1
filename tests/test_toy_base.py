"""The toy base recipe on a tiny setting, and the shipped base."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from inpo.config import DEFAULT_PARAMS, load_config
from inpo.toyworld.base import lr_factor, train_base
from inpo.toyworld.model import load_model

SHIPPED = Path(__file__).resolve().parents[1] / "inpo" / "assets" / "toy-base"

TINY = [
    "toy.resolution=8",
    "toy.model.unet_channels=[8,16]",
    "toy.model.attention_head_dim=4",
    "toy.model.norm_groups=4",
    "toy.model.text_hidden=16",
    "toy.model.text_layers=1",
    "toy.base.steps=3",
    "toy.base.batch_size=4",
    "toy.base.warmup_steps=1",
    "toy.base.eval_seeds=2",
    "runtime.cpu_threads=1",
    "sample.steps=2",
]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {
        **load_file(path / "unet" / "diffusion_pytorch_model.safetensors"),
        **load_file(path / "text_encoder" / "model.safetensors"),
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("toy") / "base"
    out.mkdir()
    (out / "stale.txt").write_text("replaced whole")  # the folder is swapped in atomically
    cfg = load_config(DEFAULT_PARAMS, TINY)
    return out, train_base(cfg, out, progress=False)


def test_recipe_writes_an_sd_layout_folder_without_vae(tiny_run):
    out, metadata = tiny_run
    assert sorted(p.name for p in out.iterdir()) == [
        "metadata.json",
        "model_index.json",
        "scheduler",
        "text_encoder",
        "tokenizer",
        "unet",
    ]
    index = json.loads((out / "model_index.json").read_text())
    assert index["vae"] == [None, None] and index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert not list(out.parent.glob(".base.*"))  # no temporary folder left behind
    on_disk = json.loads((out / "metadata.json").read_text())
    assert on_disk == json.loads(json.dumps(metadata))
    assert on_disk["seed"] == 0 and on_disk["steps"] == 3 and on_disk["images_seen"] == 12
    assert math.isfinite(on_disk["final_loss"]) and on_disk["final_loss"] > 0
    assert set(on_disk["eval"]["heldout"]) >= {"oracle_mean", "accuracy", "diversity"}
    assert on_disk["eval"]["heldout"]["images"] == 12 * 2  # 12 held-out prompts × eval_seeds


def test_recipe_folder_loads_through_diffusers_and_transformers(tiny_run):
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    out, _ = tiny_run
    unet = UNet2DConditionModel.from_pretrained(out / "unet")
    text_encoder = CLIPTextModel.from_pretrained(out / "text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(out / "tokenizer")
    scheduler = DDPMScheduler.from_pretrained(out / "scheduler")
    assert unet.config.in_channels == unet.config.out_channels == 3 and unet.config.sample_size == 8
    assert unet.config.cross_attention_dim == text_encoder.config.hidden_size == 16
    assert text_encoder.config.vocab_size == len(tokenizer)
    ids = tokenizer(["a red circle on a blue background"]).input_ids[0]
    assert len(ids) == 2 + 7  # BOS + one token for each of the 7 words + EOS
    assert scheduler.config.beta_schedule == "scaled_linear" and scheduler.config.prediction_type == "epsilon"
    assert (scheduler.config.beta_start, scheduler.config.beta_end) == (0.00085, 0.012)
    assert scheduler.config.steps_offset == 1 and scheduler.config.set_alpha_to_one is False
    DDIMScheduler.from_config(scheduler.config)  # the samplers build from it
    eps = unet(torch.zeros(1, 3, 8, 8), 10, text_encoder(torch.tensor([ids]))[0]).sample
    assert eps.shape == (1, 3, 8, 8)


def test_recipe_folder_loads_through_the_project_loader(tiny_run):
    from inpo.models import load_components

    out, _ = tiny_run
    parts = load_components(load_config(DEFAULT_PARAMS, [f"model.pretrained={out}"]).model)
    assert parts.vae is None and parts.latent_channels == 3 and parts.native_resolution == 8
    model = load_model(out)  # the toy world's own entry point goes through the same loader
    assert model.unet.config.in_channels == 3 and model.tokenizer.model_max_length == 16


def test_recipe_is_reproducible_and_trains_every_weight(tiny_run, tmp_path):
    out, metadata = tiny_run
    again = tmp_path / "again"
    cfg = load_config(DEFAULT_PARAMS, TINY)
    rerun = train_base(cfg, again, progress=False)
    first, second = _weights(out), _weights(again)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert rerun["final_loss"] == metadata["final_loss"]
    torch.manual_seed(cfg.toy.seed)  # the recipe's initialisation, untrained
    from inpo.toyworld.model import build_model

    init = build_model(8, cfg.toy.model)
    init_weights = {**init.unet.state_dict(), **init.text_encoder.state_dict()}
    changed = [k for k in first if k in init_weights and not torch.equal(first[k], init_weights[k])]
    assert len(changed) > 0.9 * len(first)


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    cfg = load_config(DEFAULT_PARAMS, ["toy.base.steps=100", "toy.base.warmup_steps=10"]).toy.base
    assert lr_factor(0, cfg) == pytest.approx(0.1)  # (0 + 1) / 10
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)  # cosine starts at its peak
    assert lr_factor(55, cfg) == pytest.approx(0.55)  # halfway: 0.1 + 0.9 · 0.5
    assert lr_factor(100, cfg) == pytest.approx(0.1)


def test_shipped_base_matches_the_default_recipe_settings():
    cfg = load_config(DEFAULT_PARAMS, [])
    metadata = json.loads((SHIPPED / "metadata.json").read_text())
    assert metadata["seed"] == cfg.toy.seed and metadata["settings"]["resolution"] == cfg.toy.resolution
    assert metadata["settings"]["model"] == json.loads(json.dumps(_asdict(cfg.toy.model)))
    assert metadata["settings"]["base"] == json.loads(json.dumps(_asdict(cfg.toy.base)))
    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert size < 8 * 2**20


def test_shipped_base_follows_heldout_prompts():
    from inpo.toyworld.metrics import prompt_following
    from inpo.toyworld.prompts import heldout_prompts
    from inpo.toyworld.sampling import sample_toy

    model = load_model(SHIPPED)
    prompts = [p for p in heldout_prompts() for _ in range(2)]
    x = sample_toy(model, prompts, [0, 1] * 12, steps=20, guidance=7.5)
    result = prompt_following((x.clamp(-1, 1) + 1) / 2, prompts)
    assert result["accuracy"] >= 0.5, result


def _asdict(obj) -> dict:
    import dataclasses

    return dataclasses.asdict(obj)


WEAK = SHIPPED.parent / "toy-weak-base"


def test_flawed_recipe_is_reproducible_and_differs_from_the_plain_one(tiny_run, tmp_path):
    out, _ = tiny_run
    cfg = load_config(DEFAULT_PARAMS, TINY)
    a = train_base(cfg, tmp_path / "a", progress=False, flawed=True)
    train_base(cfg, tmp_path / "b", progress=False, flawed=True)
    first, second, plain = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(out)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], plain[k]) for k in first)  # same init and stream, other renders
    assert a["settings"]["flaws"] == json.loads(json.dumps(_asdict(cfg.toy.mixed)))


def test_shipped_weak_base_matches_the_recipe_settings_and_is_weaker():
    cfg = load_config(DEFAULT_PARAMS, ["world=toy-mixed"])
    weak = json.loads((WEAK / "metadata.json").read_text())
    strong = json.loads((SHIPPED / "metadata.json").read_text())
    assert weak["settings"]["base"] == json.loads(json.dumps(_asdict(cfg.toy.base)))
    assert weak["settings"]["flaws"] == json.loads(json.dumps(_asdict(cfg.toy.mixed)))
    assert weak["eval"]["heldout"]["oracle_mean"] < strong["eval"]["heldout"]["oracle_mean"]
    assert cfg.model.pretrained == str(cfg.toy.mixed.base_out)


FLOW_SHIPPED = SHIPPED.parent / "toy-flow-base"


def test_world_toy_flow_trains_a_rectified_flow_base(tiny_run, tmp_path):
    """The same recipe with the objective switched: a FlowMatchEulerDiscreteScheduler with
    ``toy.flow.shift``, loaded back as a flow-matching model, sampled with flow Euler; same init and
    data stream as the epsilon base, other weights."""
    from inpo.parametrisation import FLOW_MATCHING
    from inpo.worlds import WORLDS

    out, _ = tiny_run
    cfg = load_config(DEFAULT_PARAMS, [*TINY, "world=toy-flow", f"toy.flow.base_out={tmp_path / 'flow'}"])
    meta = WORLDS["toy-flow"].train_base(cfg, progress=False)
    scheduler = json.loads((tmp_path / "flow" / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "FlowMatchEulerDiscreteScheduler" and scheduler["shift"] == 3.0
    assert "rectified flow" in meta["recipe"] and meta["sampling"]["scheduler"] == "flow_euler"
    assert load_model(tmp_path / "flow").parametrisation is FLOW_MATCHING
    flow, plain = _weights(tmp_path / "flow"), _weights(out)
    assert any(not torch.equal(flow[k], plain[k]) for k in flow)
    assert cfg.model.pretrained == str(tmp_path / "flow")


def test_shipped_flow_base_matches_the_recipe_settings_and_loads_as_a_flow():
    from inpo.parametrisation import FLOW_MATCHING

    cfg = load_config(DEFAULT_PARAMS, ["world=toy-flow"])
    metadata = json.loads((FLOW_SHIPPED / "metadata.json").read_text())
    assert metadata["settings"]["model"] == json.loads(json.dumps(_asdict(cfg.toy.model)))
    assert metadata["settings"]["base"] == json.loads(json.dumps(_asdict(cfg.toy.base)))
    assert f"shift {cfg.toy.flow.shift}" in metadata["recipe"] and metadata["sampling"]["scheduler"] == "flow_euler"
    assert load_model(FLOW_SHIPPED).parametrisation is FLOW_MATCHING
    assert cfg.model.pretrained == cfg.toy.flow.base_out
    assert sum(f.stat().st_size for f in FLOW_SHIPPED.rglob("*") if f.is_file()) < 8 * 2**20
