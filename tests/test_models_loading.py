"""Loading tiny SD1.5/SDXL/pixel models through the real loader; text conditioning; UNet call; VAE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inpo.config.sections import ModelConfig
from inpo.models import (
    Components,
    Conditioning,
    decode_latents,
    encode_images,
    encode_prompts,
    load_components,
    unet_eps,
)
from inpo.testing import write_tiny_pixel, write_tiny_sd15, write_tiny_sdxl


@pytest.fixture(scope="module")
def sd15_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sd15(tmp_path_factory.mktemp("sd15") / "base")


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sdxl(tmp_path_factory.mktemp("sdxl") / "base")


@pytest.fixture(scope="module")
def sd15(sd15_dir: Path) -> Components:
    return load_components(ModelConfig(family="sd15", pretrained=str(sd15_dir)))


@pytest.fixture(scope="module")
def sdxl(sdxl_dir: Path) -> Components:
    return load_components(ModelConfig(family="sdxl", pretrained=str(sdxl_dir)))


def _latents(c: Components, batch: int, seed: int = 0) -> torch.Tensor:
    side = c.native_resolution // c.vae_scale_factor
    return torch.randn(batch, c.latent_channels, side, side, generator=torch.Generator().manual_seed(seed))


def test_sd15_components_and_noise_schedule(sd15: Components) -> None:
    assert sd15.family == "sd15" and not sd15.is_sdxl and sd15.vae is not None
    assert (sd15.latent_channels, sd15.vae_scale_factor, sd15.native_resolution) == (4, 2, 16)
    # abar = cumprod(1 - beta), beta = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2 (scaled_linear), in float64:
    # abar[0] = 1 - 0.00085 = 0.99915, abar[499] = 0.2776697, abar[999] = 0.0046601.
    abar = sd15.alphas_cumprod
    assert abar.dtype == torch.float32 and abar.device.type == "cpu" and abar.shape == (1000,)
    assert abar[[0, 499, 999]].tolist() == pytest.approx([0.99915, 0.2776697, 0.0046601], rel=1e-5)
    assert all(not p.requires_grad for p in sd15.text_encoder.parameters())
    assert all(not p.requires_grad for p in sd15.vae.parameters())  # type: ignore[union-attr]
    assert all(p.requires_grad for p in sd15.unet.parameters())


def test_sd15_prompts_are_last_hidden_state_per_row(sd15: Components) -> None:
    cond = encode_prompts(sd15, ["a red cube", ""])
    assert cond.encoder_hidden_states.shape == (2, 77, 32) and cond.added_cond_kwargs is None
    ids = sd15.tokenizer(["a red cube"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    expected = sd15.text_encoder(ids).last_hidden_state
    assert torch.equal(cond.encoder_hidden_states[:1], expected)
    alone = encode_prompts(sd15, [""])  # caption dropout: "" encodes, and independently of its batch-mates
    assert torch.allclose(cond.encoder_hidden_states[1:], alone.encoder_hidden_states, atol=1e-6)
    assert not torch.allclose(cond.encoder_hidden_states[0], cond.encoder_hidden_states[1])


def test_sdxl_prompts_concat_penultimate_pooled_and_constant_time_ids(sdxl: Components) -> None:
    captions = ["a red cube", ""]
    cond = encode_prompts(sdxl, captions)
    tok = dict(padding="max_length", max_length=77, return_tensors="pt")
    out_1 = sdxl.text_encoder(sdxl.tokenizer(captions, **tok).input_ids, output_hidden_states=True)
    assert sdxl.text_encoder_2 is not None and sdxl.tokenizer_2 is not None
    out_2 = sdxl.text_encoder_2(sdxl.tokenizer_2(captions, **tok).input_ids, output_hidden_states=True)
    # features 0..31 from encoder 1's penultimate layer, 32..63 from encoder 2's; pooled = encoder 2's projection
    assert cond.encoder_hidden_states.shape == (2, 77, 64)
    assert torch.equal(cond.encoder_hidden_states[..., :32], out_1.hidden_states[-2])
    assert torch.equal(cond.encoder_hidden_states[..., 32:], out_2.hidden_states[-2])
    assert not torch.equal(out_1.hidden_states[-2], out_1.last_hidden_state)  # penultimate, not last
    assert cond.text_embeds is not None and torch.equal(cond.text_embeds, out_2.text_embeds)
    # constant micro-conditioning (H, W, 0, 0, H, W): the UNet's native 8 latents × VAE factor 2 = 16
    assert cond.time_ids is not None and cond.time_ids.tolist() == [[16, 16, 0, 0, 16, 16]] * 2
    at_1024 = encode_prompts(sdxl, captions, resolution=1024)
    assert at_1024.time_ids is not None and at_1024.time_ids[0].tolist() == [1024, 1024, 0, 0, 1024, 1024]


def test_sdxl_real_micro_conditioning(sdxl: Components) -> None:
    from dataclasses import replace

    real = replace(sdxl, micro_conditioning="real")
    cond = encode_prompts(
        real, ["a", "b"], resolution=16, original_sizes=[(20, 30), (16, 17)], crop_top_lefts=[(2, 7), (0, 1)]
    )
    assert cond.time_ids is not None and cond.time_ids.tolist() == [
        [20, 30, 2, 7, 16, 16],
        [16, 17, 0, 1, 16, 16],
    ]
    with pytest.raises(ValueError, match="original size and crop offset"):
        encode_prompts(real, ["a"])
    # time_ids stay fp32 through a bf16 cast: 1023 has no bf16 value (8-bit mantissa: 1020, 1024)
    odd = encode_prompts(real, ["a"], resolution=1024, original_sizes=[(1023, 767)], crop_top_lefts=[(0, 0)])
    half = odd.to(dtype=torch.bfloat16)
    assert half.encoder_hidden_states.dtype == torch.bfloat16 and half.time_ids is not None
    assert half.time_ids.dtype == torch.float32 and half.time_ids[0, :2].tolist() == [1023, 767]
    with torch.no_grad():  # and the UNet takes fp32 time_ids beside half-precision inputs under autocast
        with torch.autocast("cpu", dtype=torch.bfloat16):
            eps = unet_eps(sdxl.unet, _latents(sdxl, 1).to(torch.bfloat16), 10, odd)
    assert eps.shape == (1, 4, 8, 8) and torch.isfinite(eps).all()


def test_conditioning_rows(sdxl: Components) -> None:
    cond = encode_prompts(sdxl, ["a", "b", "c"])
    picked = cond.select([2, 0])
    assert torch.equal(picked.encoder_hidden_states, cond.encoder_hidden_states[[2, 0]])
    assert picked.time_ids is not None and picked.text_embeds is not None
    assert torch.equal(picked.text_embeds, cond.text_embeds[[2, 0]])  # type: ignore[index]
    twice = cond.repeat(2)  # winners then losers: rows [a, b, c, a, b, c]
    assert len(twice) == 6 and torch.equal(
        twice.select(slice(3, 6)).encoder_hidden_states, cond.encoder_hidden_states
    )
    joined = Conditioning.cat([cond.select([0]), cond.select([1, 2])])
    assert torch.equal(joined.encoder_hidden_states, cond.encoder_hidden_states)
    assert torch.equal(Conditioning.from_tensors(cond.tensors()).time_ids, cond.time_ids)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_unet_eps_shape_and_per_row_timesteps(family: str, request: pytest.FixtureRequest) -> None:
    c: Components = request.getfixturevalue(family)
    x = _latents(c, 2)
    cond = encode_prompts(c, ["a red cube", "a blue ball"])
    with torch.no_grad():
        eps = unet_eps(c.unet, x, torch.tensor([10, 10]), cond)
        assert eps.shape == x.shape
        assert torch.equal(unet_eps(c.unet, x, 10, cond), eps)  # scalar t broadcasts to every row
        assert not torch.allclose(unet_eps(c.unet, x, torch.tensor([10, 900]), cond)[1], eps[1])
    with pytest.raises(ValueError, match="rows"):
        unet_eps(c.unet, x, 10, cond.select([0]))


def test_unet_eps_passes_sdxl_micro_conditioning(sdxl: Components) -> None:
    x = _latents(sdxl, 1)
    cond = encode_prompts(sdxl, ["a red cube"])
    other = cond.with_time_ids(torch.tensor([[64.0, 64.0, 8.0, 8.0, 16.0, 16.0]]))
    with torch.no_grad():
        assert not torch.allclose(unet_eps(sdxl.unet, x, 500, cond), unet_eps(sdxl.unet, x, 500, other))


def test_vae_encode_uses_scaled_mean_or_a_seeded_sample(sd15: Components) -> None:
    assert sd15.vae is not None and sd15.vae.config.scaling_factor == pytest.approx(0.18215)
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    latents = encode_images(sd15, images)
    with torch.no_grad():
        mean = sd15.vae.encode(images).latent_dist.mean
    assert latents.shape == (2, 4, 8, 8) and latents.dtype == torch.float32
    assert torch.equal(latents, mean * 0.18215)
    assert torch.equal(encode_images(sd15, images), latents)  # deterministic
    gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
    sampled = encode_images(sd15, images, generator=gens)
    again = encode_images(sd15, images, generator=[torch.Generator().manual_seed(s) for s in (3, 4)])
    assert torch.equal(sampled, again) and not torch.allclose(sampled, latents)
    decoded = decode_latents(sd15, latents)
    assert decoded.shape == (2, 3, 16, 16) and decoded.abs().max() <= 1


def test_pixel_space_toy_model_has_identity_vae(tmp_path: Path) -> None:
    folder = write_tiny_pixel(tmp_path / "toy", words=["red", "cube"])
    c = load_components(ModelConfig(family="toy", pretrained=str(folder)))
    assert c.vae is None and c.latent_channels == 3 and c.vae_scale_factor == 1
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(encode_images(c, images), images) and torch.equal(decode_latents(c, images), images)
    cond = encode_prompts(c, ["red cube", ""])
    with torch.no_grad():
        assert unet_eps(c.unet, images, 3, cond).shape == images.shape
    with pytest.raises(ValueError, match="no vae|vae"):
        load_components(ModelConfig(family="sd15", pretrained=str(folder)))


def test_v_prediction_loads_and_sample_prediction_is_refused(tmp_path: Path) -> None:
    from inpo.parametrisation import V_PREDICTION

    folder = write_tiny_pixel(tmp_path / "v", words=["red"])
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "prediction_type": "v_prediction"}))
    assert load_components(ModelConfig(family="toy", pretrained=str(folder))).parametrisation is V_PREDICTION
    config_path.write_text(json.dumps({**config, "prediction_type": "sample"}))
    with pytest.raises(ValueError, match="scheduler: scheduler prediction_type 'sample' is not supported"):
        load_components(ModelConfig(family="toy", pretrained=str(folder)))


def test_family_must_match_the_checkpoint(sd15_dir: Path, sdxl_dir: Path) -> None:
    with pytest.raises(ValueError, match="addition_embed_type='text_time'"):
        load_components(ModelConfig(family="sdxl", pretrained=str(sd15_dir)))
    with pytest.raises(ValueError, match="model.family='sd15'"):
        load_components(ModelConfig(family="sd15", pretrained=str(sdxl_dir)))


def test_half_precision_text_encoders_with_upcast_vae(sd15_dir: Path) -> None:
    c = load_components(ModelConfig(family="sd15", pretrained=str(sd15_dir)), dtype=torch.bfloat16)
    assert c.text_encoder.dtype == torch.bfloat16 and c.unet.dtype == torch.float32
    assert c.vae is not None and c.vae.dtype == torch.float32  # model.upcast_vae defaults to true
    assert encode_prompts(c, ["a"]).encoder_hidden_states.dtype == torch.bfloat16
    assert encode_images(c, torch.zeros(1, 3, 16, 16)).dtype == torch.float32
    c = load_components(
        ModelConfig(family="sd15", pretrained=str(sd15_dir), upcast_vae=False), dtype=torch.bfloat16
    )
    assert c.vae is not None and c.vae.dtype == torch.bfloat16


def test_diffusers_pipelines_read_the_tiny_folders(sd15_dir: Path, sdxl_dir: Path) -> None:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    for cls, folder in ((StableDiffusionPipeline, sd15_dir), (StableDiffusionXLPipeline, sdxl_dir)):
        pipe = cls.from_pretrained(folder)
        pipe.set_progress_bar_config(disable=True)
        out = pipe(
            "a red cube",
            num_inference_steps=2,
            height=16,
            width=16,
            output_type="np",
            generator=torch.Generator().manual_seed(0),
        )
        assert out.images.shape == (1, 16, 16, 3)


def test_tiny_writers_are_seeded_and_leave_the_global_rng_alone(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    folders = [
        write_tiny_pixel(tmp_path / name, seed=seed, words=["red"])
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    ]
    assert torch.equal(torch.rand(1), expected_next)
    weights = [load_file(f / "unet" / "diffusion_pytorch_model.safetensors") for f in folders]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
