"""Tiny random SD1.5-, SD2-, SDXL- and SD3-architecture pipelines, written with ``save_pretrained``.

The folders have the exact layout of the real hub repos (``model_index.json``, ``unet/`` or SD3's
``transformer/``, ``vae/``, ``text_encoder[_2|_3]/``, ``tokenizer[_2|_3]/``, ``scheduler/``), so
``inpo.models.load_components`` and ``StableDiffusion[XL|3]Pipeline.from_pretrained`` read them offline. Sizes: images 16×16, VAE factor 2
(latents 4×8×8), UNet channels (8, 16), CLIP text encoders of width 32 with 2 layers and the real
49,408-token CLIP vocabulary (or a word-level one with ``words=``). The scheduler is SD's DDPM
schedule (scaled_linear 0.00085 → 0.012, 1000 steps, epsilon).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from inpo.tokenizer import write_clip_tokenizer

IMAGE_SIZE = 16
LATENT_SIZE = 8
TEXT_WIDTH = 32
SD15_VAE_SCALING = 0.18215
SDXL_VAE_SCALING = 0.13025
SDXL_TIME_EMBED_DIM = 8
SD3_LATENT_CHANNELS = 16
SD3_VAE_SCALING, SD3_VAE_SHIFT = 1.5305, 0.0609  # stabilityai/stable-diffusion-3.5-medium vae/config.json
SD3_CLIP_G_WIDTH = 48
SD3_T5_WIDTH = 96


def _seeded(cls: Any, seed: int, *args: Any, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)`` initialised from ``seed`` in eval mode; the caller's global RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(*args, **kwargs).eval()


def sd_scheduler(prediction_type: str = "epsilon", zero_terminal_snr: bool = False) -> Any:
    """SD1.5/SDXL/SD2's training noise schedule as a DDPMScheduler (``zero_terminal_snr``: betas
    rescaled so that abar at t = 999 is 0, ``rescale_betas_zero_snr``)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        rescale_betas_zero_snr=zero_terminal_snr,
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
        clip_sample=False,
        timestep_spacing="leading",
        steps_offset=1,
    )


def _tokenizer(path: Path, words: Sequence[str] | None) -> Any:
    from transformers import CLIPTokenizer

    write_clip_tokenizer(path, words=words)
    return CLIPTokenizer.from_pretrained(path)


def _text_encoder(
    tokenizer: Any, projection: bool, seed: int, hidden_act: str = "quick_gelu", width: int = TEXT_WIDTH
) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        projection_dim=width,
        hidden_act=hidden_act,  # OpenAI CLIP: quick_gelu; OpenCLIP ViT-H (SD2): gelu
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _seeded(CLIPTextModelWithProjection if projection else CLIPTextModel, seed, config)


def _vae(scaling_factor: float, seed: int, **sd3: Any) -> Any:
    from diffusers import AutoencoderKL

    extra: dict[str, Any] = {"latent_channels": 4, **sd3}
    return _seeded(
        AutoencoderKL,
        seed,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=IMAGE_SIZE,
        scaling_factor=scaling_factor,
        **extra,
    )


def _unet(seed: int, in_channels: int, sample_size: int, sdxl: bool, linear_projection: bool = False) -> Any:
    from diffusers import UNet2DConditionModel

    extra: dict[str, Any] = {"use_linear_projection": True} if linear_projection else {}
    if sdxl:
        extra = {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": SDXL_TIME_EMBED_DIM,
            "projection_class_embeddings_input_dim": 6 * SDXL_TIME_EMBED_DIM + TEXT_WIDTH,
            "use_linear_projection": True,
        }
    return _seeded(
        UNet2DConditionModel,
        seed,
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=in_channels,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        attention_head_dim=(2, 4),
        cross_attention_dim=2 * TEXT_WIDTH if sdxl else TEXT_WIDTH,
        **extra,
    )


def write_tiny_sd15(
    path: str | Path, seed: int = 0, words: Sequence[str] | None = None, prediction_type: str = "epsilon"
) -> Path:
    """A tiny SD1.5-architecture pipeline folder at ``path`` (~7 MB with the real CLIP vocabulary)."""
    return _write_sd_layout(path, seed, words, sd_scheduler(prediction_type), "quick_gelu", False)


def write_tiny_sd2(
    path: str | Path,
    seed: int = 0,
    words: Sequence[str] | None = None,
    prediction_type: str = "v_prediction",
    zero_terminal_snr: bool = False,
) -> Path:
    """A tiny SD2.x-architecture pipeline folder: SD1.5's layout, a UNet with linear projections in
    its transformer blocks, a gelu text encoder, a v-prediction scheduler (SD2.1 768-v)."""
    scheduler = sd_scheduler(prediction_type, zero_terminal_snr)
    return _write_sd_layout(path, seed, words, scheduler, "gelu", True)


def _write_sd_layout(
    path: str | Path,
    seed: int,
    words: Sequence[str] | None,
    scheduler: Any,
    text_act: str,
    linear_projection: bool,
) -> Path:
    from diffusers import StableDiffusionPipeline

    out = Path(path)
    tokenizer = _tokenizer(out / "_tokenizer_src", words)
    pipe: Any = StableDiffusionPipeline(
        vae=_vae(SD15_VAE_SCALING, seed + 1),
        text_encoder=_text_encoder(tokenizer, projection=False, seed=seed + 2, hidden_act=text_act),
        tokenizer=tokenizer,
        unet=_unet(seed, 4, LATENT_SIZE, sdxl=False, linear_projection=linear_projection),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    _remove_tree(out / "_tokenizer_src")
    return out


def write_tiny_sdxl(
    path: str | Path, seed: int = 0, words: Sequence[str] | None = None, prediction_type: str = "epsilon"
) -> Path:
    """A tiny SDXL-architecture pipeline folder (two text encoders, text_time micro-conditioning)."""
    from diffusers import StableDiffusionXLPipeline

    out = Path(path)
    tokenizer = _tokenizer(out / "_tokenizer_src", words)
    pipe: Any = StableDiffusionXLPipeline(
        vae=_vae(SDXL_VAE_SCALING, seed + 1),
        text_encoder=_text_encoder(tokenizer, projection=False, seed=seed + 2),
        text_encoder_2=_text_encoder(tokenizer, projection=True, seed=seed + 3),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=_unet(seed, in_channels=4, sample_size=LATENT_SIZE, sdxl=True),
        scheduler=sd_scheduler(prediction_type),
    )
    pipe.save_pretrained(out, safe_serialization=True)
    _remove_tree(out / "_tokenizer_src")
    return out


def write_tiny_sd3(path: str | Path, seed: int = 0, words: Sequence[str] | None = None) -> Path:
    """A tiny SD3.5-architecture pipeline folder: an MMDiT transformer (patch 2, qk RMS norm, a dual-
    attention block as SD3.5 Medium) on a 16-channel VAE with SD3's shift and scale, CLIP-L (width 32)
    and CLIP-bigG (width 48) with projections, a T5 encoder of width 96 (the joint attention width;
    CLIP's 80 are padded to it) with a word-level Unigram tokenizer, and flow matching at shift 3."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    out = Path(path)
    tokenizer = _tokenizer(out / "_tokenizer_src", words)
    widths = (TEXT_WIDTH, SD3_CLIP_G_WIDTH)
    pipe: Any = StableDiffusion3Pipeline(
        transformer=_seeded(
            SD3Transformer2DModel,
            seed,
            sample_size=LATENT_SIZE,
            patch_size=2,
            in_channels=SD3_LATENT_CHANNELS,
            out_channels=SD3_LATENT_CHANNELS,
            num_layers=2,
            attention_head_dim=8,
            num_attention_heads=4,
            joint_attention_dim=SD3_T5_WIDTH,
            caption_projection_dim=32,
            pooled_projection_dim=sum(widths),
            pos_embed_max_size=16,
            dual_attention_layers=(0,),
            qk_norm="rms_norm",
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(
            SD3_VAE_SCALING,
            seed + 1,
            latent_channels=SD3_LATENT_CHANNELS,
            shift_factor=SD3_VAE_SHIFT,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
        text_encoder=_text_encoder(tokenizer, projection=True, seed=seed + 2, width=widths[0]),
        tokenizer=tokenizer,
        text_encoder_2=_text_encoder(tokenizer, projection=True, seed=seed + 3, hidden_act="gelu", width=widths[1]),
        tokenizer_2=tokenizer,
        text_encoder_3=None,
        tokenizer_3=None,
    )
    t5_tokenizer = _t5_tokenizer(words or [])
    pipe.register_modules(text_encoder_3=_t5_encoder(t5_tokenizer, seed + 4), tokenizer_3=t5_tokenizer)
    pipe.save_pretrained(out, safe_serialization=True)
    _remove_tree(out / "_tokenizer_src")
    return out


def _t5_tokenizer(words: Sequence[str]) -> Any:
    """A T5 Unigram tokenizer built in code: T5's specials, one piece per word, letters as fallback."""
    from transformers import T5Tokenizer  # transformers 5: the tokenizers-backed (fast) class

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + w.lower(), -1.0) for w in dict.fromkeys(words)]
    pieces += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _t5_encoder(tokenizer: Any, seed: int) -> Any:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=SD3_T5_WIDTH,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",  # T5 v1.1, as SD3's T5-XXL
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return _seeded(T5EncoderModel, seed, config)


def write_tiny_pixel(
    path: str | Path,
    seed: int = 0,
    words: Sequence[str] | None = None,
    image_size: int = IMAGE_SIZE,
    flow_shift: float | None = None,
) -> Path:
    """A tiny pixel-space model in the SD1.5 layout without ``vae/`` (the toy world's shape);
    ``flow_shift``: a flow-matching model (FlowMatchEulerDiscreteScheduler with that shift)."""
    out = Path(path)
    tokenizer = _tokenizer(out / "tokenizer", words)
    _text_encoder(tokenizer, projection=False, seed=seed + 2).save_pretrained(out / "text_encoder")
    _unet(seed, in_channels=3, sample_size=image_size, sdxl=False).save_pretrained(out / "unet")
    if flow_shift is None:
        sd_scheduler().save_pretrained(out / "scheduler")
    else:
        from diffusers import FlowMatchEulerDiscreteScheduler

        scheduler: Any = FlowMatchEulerDiscreteScheduler(shift=flow_shift)
        scheduler.save_pretrained(out / "scheduler")
    return out


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
