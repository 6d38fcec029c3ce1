"""The toy base model: SD1.5's folder layout at toy size, in pixel space (no ``vae/`` folder).

    <dir>/unet/          UNet2DConditionModel, 3 input/output channels (RGB pixels in [-1, 1])
    <dir>/text_encoder/  CLIPTextModel, a few layers wide enough for the toy vocabulary
    <dir>/tokenizer/     CLIPTokenizer with one token per toy word (``inpo.tokenizer``)
    <dir>/scheduler/     DDPMScheduler with SD's schedule (scaled_linear 0.00085 → 0.012, 1000 steps)
    <dir>/model_index.json

Pixel space rather than a tiny VAE: a 16×16×3 image is already a latent-sized tensor, a VAE would
take part of the base's CPU budget and add its own reconstruction error to every image, and the same
loader serves both (a missing ``vae/`` means pixels, 3 channels).

Attention sits only at the 4×4 level (last down block, mid block, first up block): that is where
the prompt decides colour, shape and layout; the 16×16 and 8×8 levels only draw edges. This halves the
cost of a training step against attention at 8×8 too (0.13 s vs 0.26 s at batch 64 on 2 cores).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..tokenizer import write_clip_tokenizer
from .world import VOCABULARY

if TYPE_CHECKING:
    from ..config.sections import ToyModelConfig
    from ..models import Components

SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "clip_sample": False,
}


def build_tokenizer(max_tokens: int) -> Any:
    """A word-level CLIPTokenizer over the toy vocabulary, padded/truncated to ``max_tokens``."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(tmp, words=VOCABULARY, model_max_length=max_tokens)
        return CLIPTokenizer.from_pretrained(tmp)


def build_text_encoder(tokenizer: Any, cfg: ToyModelConfig) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.text_hidden,
        intermediate_size=2 * cfg.text_hidden,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=max(1, cfg.text_hidden // 16),
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def build_unet(resolution: int, cross_attention_dim: int, cfg: ToyModelConfig) -> Any:
    from diffusers import UNet2DConditionModel

    levels = len(cfg.unet_channels)
    down = ["DownBlock2D"] * (levels - 1) + ["CrossAttnDownBlock2D"]
    up = ["CrossAttnUpBlock2D"] + ["UpBlock2D"] * (levels - 1)
    return UNet2DConditionModel(
        sample_size=resolution,
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(cfg.unet_channels),
        layers_per_block=cfg.layers_per_block,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_groups,
    )


def build_scheduler(flow_shift: float | None = None) -> Any:
    """SD's DDPM schedule, or (``flow_shift``) a FlowMatchEulerDiscreteScheduler with that shift."""
    from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

    if flow_shift is not None:
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=flow_shift)
    return DDPMScheduler.from_config(SCHEDULER_CONFIG)


def build_model(resolution: int, cfg: ToyModelConfig, flow_shift: float | None = None) -> Components:
    """Fresh, randomly initialised toy components (seed torch before calling for reproducibility);
    ``flow_shift``: a flow-matching model (world toy-flow).

    The same :class:`inpo.models.Components` the project's loader returns (``vae`` None: pixel space),
    so sampling and training code take a freshly built base and a loaded one alike.
    """
    from ..models import Components
    from ..parametrisation import levels_of, parametrisation_of

    tokenizer = build_tokenizer(cfg.max_tokens)
    text_encoder = build_text_encoder(tokenizer, cfg)
    unet = build_unet(resolution, cfg.text_hidden, cfg)
    scheduler = build_scheduler(flow_shift)
    return Components(
        "toy",
        unet,
        None,
        text_encoder,
        tokenizer,
        scheduler,
        levels_of(scheduler),
        parametrisation=parametrisation_of(scheduler),
    )


def save_model(model: Components, out_dir: str | Path) -> Path:
    """Write the four component folders (safetensors) and ``model_index.json`` into ``out_dir``."""
    import diffusers

    out = Path(out_dir)
    model.unet.save_pretrained(out / "unet", safe_serialization=True)
    model.text_encoder.save_pretrained(out / "text_encoder", safe_serialization=True)
    model.tokenizer.save_pretrained(out / "tokenizer")
    model.scheduler.save_pretrained(out / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "vae": [None, None],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return out


def load_model(path: str | Path) -> Components:
    """Load a toy base folder through the project's loader (:func:`inpo.models.load_components`)."""
    from ..config.sections import ModelConfig
    from ..models import load_components

    root = Path(path)
    if not (root / "unet").is_dir():
        raise FileNotFoundError(
            f"{root}: not a toy base folder (no unet/); run `inpo toy base` to create one"
        )
    parts = load_components(ModelConfig(family="toy", pretrained=str(root)))
    if parts.vae is not None:
        raise ValueError(f"{root}: a toy base is pixel space, but the folder has a vae/")
    parts.unet.eval()
    return parts
