"""HPS v2 / v2.1 and CLIP score: ``cos(img, txt)`` with an open_clip model built empty and loaded by us.

Both resize the longer side and zero-pad (no crop) and tokenize with open_clip's tokenizer. Values
are stored as raw cosines; reports print ×100. The architecture is an open_clip model name
(``ViT-H-14``) or a JSON model config (``{"embed_dim", "vision_cfg", "text_cfg"}``, optionally
under ``"model_cfg"``), so tests can build tiny models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .base import Scorer
from .loading import load_state_dict, resolve_file
from .preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, l2_normalize, pad_preprocess, pad_preprocess_info

if TYPE_CHECKING:
    from PIL import Image

    from inpo.config.sections import EvalConfig

HPS_FILES = {"v2.0": "xswu/HPSv2/HPS_v2_compressed.pt", "v2.1": "xswu/HPSv2/HPS_v2.1_compressed.pt"}


def build_open_clip(architecture: str, quick_gelu: bool = False) -> tuple[Any, Any]:
    """An open_clip model with random weights (``pretrained=None``) and its tokenizer.

    ``architecture``: a built-in open_clip model name, or a path to a ``.json`` model config.
    """
    import open_clip

    if architecture.endswith(".json"):
        path = Path(architecture)
        if not path.is_file():
            raise FileNotFoundError(f"open_clip model config {architecture!r} does not exist")
        raw = json.loads(path.read_text())
        cfg = dict(raw.get("model_cfg", raw))
        missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in cfg]
        if missing:
            raise ValueError(f"{path}: open_clip model config lacks {', '.join(missing)}")
        if cfg.pop("custom_text", False):
            raise ValueError(f"{path}: custom-text open_clip configs are not supported here")
        cfg["quick_gelu"] = cfg.get("quick_gelu", False) or quick_gelu
        model = open_clip.CLIP(**cfg)
        tokenizer = open_clip.SimpleTokenizer(context_length=cfg["text_cfg"].get("context_length", 77))
    else:
        model = open_clip.create_model(architecture, pretrained=None, force_quick_gelu=quick_gelu)
        tokenizer = open_clip.get_tokenizer(architecture)
    return model, tokenizer


def _image_size(model: Any) -> int:
    size = model.visual.image_size
    size = size if isinstance(size, int) else size[0]
    return int(size)


class OpenClipCosineScorer(Scorer):
    """``cos(img, txt)`` of an open_clip model; subclasses say which weights and name."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        sources: dict[str, Any],
        mean: Sequence[float] = OPENAI_CLIP_MEAN,
        std: Sequence[float] = OPENAI_CLIP_STD,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 16,
    ):
        super().__init__(device, dtype, batch_size)
        self.model = model.to(self.device, dtype).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.sources = sources
        self.mean, self.std = tuple(mean), tuple(std)
        self.image_size = _image_size(model)

    @staticmethod
    def _load_model(architecture: str, weights: Path, quick_gelu: bool = False) -> tuple[Any, Any]:
        model, tokenizer = build_open_clip(architecture, quick_gelu)
        state = load_state_dict(weights)
        if state and all(k.startswith("module.") for k in state):
            state = {k.removeprefix("module."): v for k, v in state.items()}
        model.load_state_dict(state, strict=True)
        return model, tokenizer

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Resize longest side, zero-pad, normalise. → ``[N, 3, S, S]`` float32."""
        return pad_preprocess(images, self.image_size, self.mean, self.std)

    def embed_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``n(img)``: ``[N, 3, S, S]`` → ``[N, D]`` float32, unit norm."""
        return l2_normalize(self.model.encode_image(pixel_values.to(self.device, self.dtype)).float())

    def embed_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        """``n(txt)``: N prompts → ``[N, D]`` float32, unit norm (open_clip tokenizer, padded/truncated)."""
        tokens = self.tokenizer(list(prompts)).to(self.device)
        return l2_normalize(self.model.encode_text(tokens).float())

    def _score_batch(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        return (self.embed_images(self.preprocess(images)) * self.embed_texts(prompts)).sum(-1)

    def info(self) -> dict[str, Any]:
        return {
            "metric": self.name,
            **self.sources,
            "formula": "cos(img, txt)",
            "stored": "raw cosine; reports print x100",
            "preprocess": pad_preprocess_info(self.image_size, self.mean, self.std),
            "dtype": str(self.dtype).removeprefix("torch."),
        }


class HpsScorer(OpenClipCosineScorer):
    """Human Preference Score v2.0 / v2.1; the metric is named ``hps-v2.0`` or ``hps-v2.1`` (not comparable)."""

    @classmethod
    def load(
        cls,
        version: str = "v2.1",
        architecture: str = "ViT-H-14",
        checkpoint: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 16,
    ) -> HpsScorer:
        """``checkpoint``: local file or hub ``org/repo/file`` holding ``{"state_dict": ...}``;
        None → the official file of ``version``."""
        if version not in HPS_FILES:
            raise ValueError(f"unknown HPS version {version!r}; valid: {', '.join(HPS_FILES)}")
        spec = checkpoint or HPS_FILES[version]
        weights = resolve_file(spec)
        model, tokenizer = cls._load_model(architecture, weights)
        sources = {
            "version": version,
            "architecture": architecture,
            "checkpoint": spec,
            "checkpoint_file": weights.name,
        }
        scorer = cls(model, tokenizer, sources, device=device, dtype=dtype, batch_size=batch_size)
        scorer.name = f"hps-{version}"
        return scorer

    @classmethod
    def from_config(
        cls, eval_cfg: EvalConfig, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> HpsScorer:
        c = eval_cfg.hps
        return cls.load(
            c.version, c.architecture, c.checkpoint, device, dtype or torch.float32, eval_cfg.score_batch_size
        )


class ClipScorer(OpenClipCosineScorer):
    """CLIP score (cosine); the backbone (architecture + pretrained weights) is a setting, recorded in info."""

    name = "clip"

    @classmethod
    def load(
        cls,
        architecture: str = "ViT-H-14",
        pretrained: str = "laion2B-s32B-b79K",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 16,
    ) -> ClipScorer:
        """``pretrained``: a local weights file, an open_clip tag of ``architecture`` (fetched through
        open_clip's hub cache), or a hub ``org/repo/file``."""
        mean, std, quick_gelu = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, False
        if Path(pretrained).expanduser().is_file():
            weights = Path(pretrained).expanduser()
        elif not architecture.endswith(".json") and _open_clip_tag(architecture, pretrained):
            import open_clip

            tag_cfg = _open_clip_tag(architecture, pretrained)
            try:
                weights = Path(open_clip.download_pretrained(tag_cfg))
            except Exception as err:  # offline without a cache, network errors: name the tag
                raise FileNotFoundError(
                    f"open_clip weights {architecture}/{pretrained} ({tag_cfg.get('hf_hub') or tag_cfg.get('url')}) "
                    f"could not be fetched ({type(err).__name__}: {err}); give eval.clip.pretrained a local file"
                ) from err
            mean, std = tag_cfg.get("mean") or mean, tag_cfg.get("std") or std
            quick_gelu = bool(tag_cfg.get("quick_gelu", False))
        else:
            weights = resolve_file(pretrained)
        model, tokenizer = cls._load_model(architecture, weights, quick_gelu)
        sources = {"architecture": architecture, "pretrained": pretrained, "weights_file": weights.name}
        return cls(model, tokenizer, sources, mean, std, device, dtype, batch_size)

    @classmethod
    def from_config(
        cls, eval_cfg: EvalConfig, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> ClipScorer:
        c = eval_cfg.clip
        return cls.load(
            c.architecture, c.pretrained, device, dtype or torch.float32, eval_cfg.score_batch_size
        )


def _open_clip_tag(architecture: str, tag: str) -> dict[str, Any]:
    import open_clip

    return dict(open_clip.get_pretrained_cfg(architecture, tag.lower()) or {})
