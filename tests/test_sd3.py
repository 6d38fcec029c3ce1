"""The SD3 / SD3.5 family (issue 13): a tiny SD3.5-architecture pipeline built in code (MMDiT
transformer, CLIP-L, CLIP-bigG, T5, 16-channel VAE, flow matching), saved and loaded back through the
real loader; its conditioning and sampling checked against diffusers' own StableDiffusion3Pipeline,
every method trained on it, LoRA on the transformer's attention, and SD3.5 Medium sized from configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from inpo.parametrisation import FLOW_MATCHING
from inpo.train.loop import train
from tests.train_helpers import make_config, make_world, read_losses, run_spec

FLOW = ["method.inpo.inversion.eta=0.0", "sample.scheduler=flow_euler"]


@pytest.fixture(scope="module")
def sd3_world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("sd3"), family="sd3")


def _components(world, **settings):
    from inpo.config.sections import ModelConfig
    from inpo.models import load_components

    return load_components(ModelConfig(family="sd3", pretrained=str(world["model"]), **settings))


def _trainable(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters() if v.requires_grad}


def test_sd3_conditioning_is_the_pipelines_for_each_t5_mode(sd3_world) -> None:
    """CLIP-L ‖ CLIP-bigG penultimate states padded to T5's width, then T5's tokens; pooled = both
    projections. ``zeros`` is the pipeline without text_encoder_3; ``drop`` keeps the 77 CLIP tokens."""
    from diffusers import StableDiffusion3Pipeline

    from inpo.models import encode_prompts

    pipe = StableDiffusion3Pipeline.from_pretrained(str(sd3_world["model"]))
    prompts = ["a red cat", "blue square"]
    for mode in ("load", "zeros", "drop"):
        components = _components(sd3_world, sd3_t5=mode, sd3_max_sequence_length=12)
        assert (components.text_encoder_3 is None) == (mode != "load")
        cond = encode_prompts(components, prompts)
        assert cond.kind == "sd3" and cond.text_embeds.shape == (2, 32 + 48)
        assert cond.encoder_hidden_states.shape == (2, 77 + (0 if mode == "drop" else 12), 96)
        if mode == "drop":
            continue
        pipe.text_encoder_3 = components.text_encoder_3
        hidden, _, pooled, _ = pipe.encode_prompt(
            prompts, prompts, prompts, do_classifier_free_guidance=False, max_sequence_length=12
        )
        torch.testing.assert_close(cond.encoder_hidden_states, hidden)
        torch.testing.assert_close(cond.text_embeds, pooled)


def test_sd3_samples_as_its_pipeline_does_from_the_same_latents(sd3_world) -> None:
    """The project's sampler (flow Euler, CFG with the empty prompt) against StableDiffusion3Pipeline
    given the same pre-drawn latents: the same images."""
    from diffusers import StableDiffusion3Pipeline

    from inpo.sampling import initial_noise, sample_images

    components = _components(sd3_world)
    assert components.parametrisation is FLOW_MATCHING and components.latent_channels == 16
    prompts, seeds = ["red cat", "blue dog"], [0, 1]
    ours = sample_images(components, components.unet, prompts, seeds, steps=3, guidance=3.0, scheduler="flow_euler")
    pipe = StableDiffusion3Pipeline.from_pretrained(str(sd3_world["model"]))
    theirs = pipe(
        prompts,
        negative_prompt=["", ""],
        latents=initial_noise(seeds, (16, 8, 8)),
        num_inference_steps=3,
        guidance_scale=3.0,
        output_type="pt",
        height=16,
        width=16,
    ).images
    assert ours.shape == (2, 3, 16, 16) and float(ours.std()) > 0
    torch.testing.assert_close((ours * 0.5 + 0.5).clamp(0, 1), theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("method", "overrides", "first_loss"),
    [
        ("inpo", ["train.cache_embeddings=true"], math.log(2)),
        ("dpo", ["model.sd3_t5=zeros"], math.log(2)),
        ("sft", ["model.sd3_t5=drop"], None),
        ("kto", ["method.kto.lambda_undesirable=3.0"], 1.0),  # (1/2 + 3/2) / 2 at policy = reference
    ],
)
def test_every_method_trains_a_tiny_sd3(sd3_world, tmp_path, method, overrides, first_loss) -> None:
    cfg = make_config(tmp_path, sd3_world, family="sd3", overrides=[*FLOW, *overrides])
    base = _trainable(_components(sd3_world).unet)
    result = train(run_spec(cfg, method))
    after = _trainable(result.policy)
    assert type(result.policy).__name__ == "SD3Transformer2DModel"
    assert [k for k in base if torch.equal(base[k], after[k])] == [], "parameters not updated"
    assert all(torch.equal(base[k], v) for k, v in _trainable(result.reference.unet).items() if k in base)
    losses = read_losses(result.metrics_path)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    if first_loss is not None:
        assert losses[0] == pytest.approx(first_loss, abs=1e-5)


def test_lora_on_the_transformers_attention_trains_saves_and_loads(sd3_world, tmp_path) -> None:
    """InPO with a LoRA adapter on to_q/k/v/out of every SD3 attention (both streams' joint
    attention): only adapter weights change; the saved adapter (``transformer.`` keys) loads into
    StableDiffusion3Pipeline and, merged through ``model.unet_lora``, computes what the policy did."""
    from diffusers import StableDiffusion3Pipeline

    from inpo.models import encode_prompts, unet_eps

    cfg = make_config(tmp_path, sd3_world, family="sd3", overrides=[*FLOW, "model.lora.enabled=true"])
    result = train(run_spec(cfg, "inpo"))
    lora = {k: v for k, v in _trainable(result.policy).items()}
    assert lora and all("lora_" in k for k in lora)
    assert any(".attn.to_q." in k for k in lora) and any(".attn2.to_q." in k for k in lora)  # SD3.5 dual attention
    from safetensors.torch import load_file

    weights = result.weights_dir
    keys = list(load_file(weights / "pytorch_lora_weights.safetensors"))
    assert keys and all(k.startswith("transformer.") for k in keys)
    pipe = StableDiffusion3Pipeline.from_pretrained(str(sd3_world["model"]))
    pipe.load_lora_weights(str(weights))
    assert pipe.transformer.peft_config
    merged = _components(sd3_world, unet_lora=str(weights))
    cond = encode_prompts(merged, ["red cat"])
    x, t = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([700.0])
    torch.testing.assert_close(unet_eps(merged.unet, x, t, cond), unet_eps(result.policy, x, t, cond), atol=1e-5, rtol=1e-4)


def test_sd3_family_refuses_a_unet_model_and_the_reverse(sd3_world, tmp_path) -> None:
    from inpo.config.sections import ModelConfig
    from inpo.models import load_components

    sd15 = make_world(tmp_path, family="sd15")["model"]
    with pytest.raises(ValueError, match="model.family='sd3' expects a transformer/ folder"):
        load_components(ModelConfig(family="sd3", pretrained=str(sd15)))
    with pytest.raises(OSError):  # an SD3 folder has no unet/
        load_components(ModelConfig(family="sd15", pretrained=str(sd3_world["model"])))


def test_check_sizes_sd35_medium_at_its_real_size_from_configs_only(capsys) -> None:
    """``inpo check --shapes-only`` on the shipped SD3.5 Medium configs: transformer 2,243,171,520;
    CLIP-L 123,650,304 + CLIP-bigG 694,659,840 + T5-XXL encoder 4,762,310,656 (its embedding tied to
    ``shared``, as loaded) + VAE 83,819,683 frozen; T5 left out with ``model.sd3_t5=zeros``; SD3.5
    Large's transformer counts 8,056,627,520 (the published 8.1B) with the same code."""
    from inpo.cli import main

    root = Path(__file__).resolve().parents[1]
    args = ["check", "--shapes-only", "model.family=sd3", f"model.pretrained={root}/configs/models/sd35-medium"]
    assert main([*args, "train.mixed_precision=bf16"]) in (0, None)
    out = capsys.readouterr().out
    transformer, frozen = 2_243_171_520, 123_650_304 + 694_659_840 + 4_762_310_656 + 83_819_683
    assert f"transformer {transformer:,} parameters" in out and f"frozen encoders {frozen:,} × 2 B" in out
    gib = (transformer * 16 + transformer * 2 + frozen * 2) / 1024**3
    assert f"~{gib:.2f} GiB" in out
    assert main([*args, "train.mixed_precision=bf16", "model.sd3_t5=zeros"]) in (0, None)
    assert f"frozen encoders {frozen - 4_762_310_656:,} × 2 B" in capsys.readouterr().out
    large = [*args[:-1], f"model.pretrained={root}/configs/models/sd35-large"]
    assert main(large) in (0, None)
    assert "transformer 8,056,627,520 parameters" in capsys.readouterr().out  # the published 8.1B
