"""PickScore: ``exp(logit_scale) · cos(img, txt)`` with a transformers ``CLIPModel`` (≈ 20–23 on real images).

Image preprocessing is the CLIP processor's (shorter side resized, centre crop); text is padded and
truncated to ``max_length`` (77) tokens, as the PickScore release does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .base import Scorer
from .loading import check_loading_info
from .preprocess import crop_preprocess_info, l2_normalize, load_clip_image_processor

if TYPE_CHECKING:
    from PIL import Image

    from inpo.config.sections import EvalConfig


class PickScoreScorer(Scorer):
    name = "pickscore"

    def __init__(
        self,
        model: Any,
        image_processor: Any,
        tokenizer: Any,
        sources: dict[str, str],
        max_length: int = 77,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 16,
    ):
        super().__init__(device, dtype, batch_size)
        self.model = model.to(self.device, dtype).eval().requires_grad_(False)
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.sources = sources
        self.max_length = max_length

    @classmethod
    def load(
        cls,
        model: str,
        processor: str,
        max_length: int = 77,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 16,
    ) -> PickScoreScorer:
        """``model``: hub id or CLIPModel folder; ``processor``: folder with the image processor and tokenizer."""
        from transformers import AutoTokenizer, CLIPModel

        loaded: Any = CLIPModel.from_pretrained(model, output_loading_info=True)
        clip, loading = loaded
        check_loading_info(loading, model)
        image_processor = load_clip_image_processor(processor)
        tokenizer = AutoTokenizer.from_pretrained(processor)
        sources = {"model": model, "processor": processor}
        return cls(clip, image_processor, tokenizer, sources, max_length, device, dtype, batch_size)

    @classmethod
    def from_config(
        cls, eval_cfg: EvalConfig, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> PickScoreScorer:
        c = eval_cfg.pickscore
        return cls.load(
            c.model, c.processor, c.max_length, device, dtype or torch.float32, eval_cfg.score_batch_size
        )

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Shorter side resized, centre crop, normalised. → ``[N, 3, S, S]`` float32."""
        return self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]

    def embed_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``n(img)``: ``[N, 3, S, S]`` → ``[N, D]`` float32, unit norm."""
        out = self.model.get_image_features(pixel_values=pixel_values.to(self.device, self.dtype))
        return l2_normalize(out.pooler_output.float())

    def embed_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        """``n(txt)``: N prompts → ``[N, D]`` float32, unit norm."""
        tokens = self.tokenizer(
            list(prompts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        out = self.model.get_text_features(**tokens)
        return l2_normalize(out.pooler_output.float())

    def logit_scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` of the loaded model (≈ 100 for PickScore_v1), float32 scalar."""
        return self.model.logit_scale.detach().float().exp()

    def _score_batch(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        cos = (self.embed_images(self.preprocess(images)) * self.embed_texts(prompts)).sum(-1)
        return self.logit_scale() * cos

    def info(self) -> dict[str, Any]:
        return {
            "metric": self.name,
            **self.sources,
            "logit_scale_exp": float(self.logit_scale()),
            "formula": "exp(logit_scale) * cos(img, txt)",
            "stored": "as is (already multiplied by exp(logit_scale))",
            "text_max_length": self.max_length,
            "preprocess": crop_preprocess_info(self.image_processor),
            "dtype": str(self.dtype).removeprefix("torch."),
        }
