"""LAION aesthetic predictor: ``MLP(n(img))`` on OpenAI CLIP ViT-L/14 image embeddings (1–10 scale).

The image tower is a transformers ``CLIPVisionModelWithProjection`` (it loads from a full
``CLIPModel`` folder such as ``openai/clip-vit-large-patch14``); the head is the LAION MLP whose
state-dict keys are ``layers.{0,2,4,6,7}.{weight,bias}``. The prompt is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .base import Scorer
from .loading import check_loading_info, load_state_dict, resolve_file
from .preprocess import crop_preprocess_info, l2_normalize, load_clip_image_processor

if TYPE_CHECKING:
    from PIL import Image

    from inpo.config.sections import EvalConfig


class AestheticHead(nn.Module):
    """``Linear(D,1024) Dropout(0.2) Linear(1024,128) Dropout(0.2) Linear(128,64) Dropout(0.1)
    Linear(64,16) Linear(16,1)``, no activations; ``D`` = 768 for ViT-L/14. ``[N, D]`` → ``[N, 1]``."""

    def __init__(self, in_features: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.layers(embeds)


class AestheticScorer(Scorer):
    name = "aesthetic"

    def __init__(
        self,
        vision: Any,
        processor: Any,
        head: AestheticHead,
        sources: dict[str, str],
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 16,
    ):
        super().__init__(device, dtype, batch_size)
        self.vision = vision.to(self.device, dtype).eval().requires_grad_(False)
        self.processor = processor
        self.head = head.to(self.device, torch.float32).eval().requires_grad_(False)
        self.sources = sources

    @classmethod
    def load(
        cls,
        clip_model: str,
        head: str,
        processor: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 16,
    ) -> AestheticScorer:
        """``clip_model``: hub id or folder of a CLIPModel / CLIPVisionModelWithProjection;
        ``head``: local file or hub ``org/repo/file`` (.pth/.pt weights-only, or .safetensors)."""
        from transformers import AutoConfig, CLIPConfig, CLIPVisionModelWithProjection

        config: Any = AutoConfig.from_pretrained(clip_model)
        if isinstance(config, CLIPConfig):  # a full CLIPModel folder: its image tower + visual projection
            vision_config: Any = config.vision_config
            vision_config.projection_dim = config.projection_dim
            config = vision_config
        loaded: Any = CLIPVisionModelWithProjection.from_pretrained(
            clip_model, config=config, output_loading_info=True
        )
        vision, loading = loaded
        check_loading_info(loading, clip_model)
        head_file = resolve_file(head)
        mlp = AestheticHead(vision.config.projection_dim)
        mlp.load_state_dict(load_state_dict(head_file), strict=True)
        image_processor = load_clip_image_processor(processor or clip_model)
        sources = {"clip_model": clip_model, "processor": processor or clip_model, "head": head}
        sources["head_file"] = str(Path(head_file).name)
        return cls(vision, image_processor, mlp, sources, device, dtype, batch_size)

    @classmethod
    def from_config(
        cls, eval_cfg: EvalConfig, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> AestheticScorer:
        c = eval_cfg.aesthetic
        return cls.load(
            c.clip_model, c.head, c.processor, device, dtype or torch.float32, eval_cfg.score_batch_size
        )

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Shorter side resized, centre crop, OpenAI mean/std. → ``[N, 3, S, S]`` float32."""
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def embed_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``n(img)``: projected image embeddings, L2-normalised in float32. ``[N,3,S,S]`` → ``[N, D]``."""
        out = self.vision(pixel_values=pixel_values.to(self.device, self.dtype))
        return l2_normalize(out.image_embeds.float())

    def _score_batch(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        return self.head(self.embed_images(self.preprocess(images))).squeeze(-1)

    def info(self) -> dict[str, Any]:
        return {
            "metric": self.name,
            **self.sources,
            "backbone": getattr(self.vision.config, "_name_or_path", "") or self.sources["clip_model"],
            "embedding_dim": int(self.vision.config.projection_dim),
            "formula": "MLP(n(img)), prompt ignored",
            "stored": "raw head output (1-10 scale)",
            "preprocess": crop_preprocess_info(self.processor),
            "dtype": str(self.dtype).removeprefix("torch."),
        }
