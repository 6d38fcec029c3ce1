"""Image preprocessing shared by the scorers, and the L2 normalisation ``n(v) = v / ||v||``.

Two geometries (spec: evaluation):
- centre crop (aesthetic, PickScore): the CLIP image processor, resize the shorter side, crop the centre;
- resize-longest-and-pad (HPS, CLIP score): resize the longer side to ``size`` (bicubic,
  antialiased), pad with black (zeros) around it before normalisation; nothing is cut off.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def l2_normalize(v: torch.Tensor) -> torch.Tensor:
    """``n(v) = v / ||v||`` over the last dim. ``[..., D]`` → ``[..., D]``."""
    return v / v.norm(dim=-1, keepdim=True)


def resize_longest_and_pad(image: Any, size: int, fill: int = 0) -> Any:
    """HPS v2's ``ResizeMaxSize``: scale so the longer side is ``size`` (bicubic, sides rounded with
    ``round``), then pad to ``size × size`` with ``fill``, the odd pixel going right/bottom.

    PIL image in, RGB PIL image of ``size × size`` out. (The original skips the pad when no resize is
    needed, which only happens for an image already ``size`` on its longer side; we always pad.)
    """
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    image = image.convert("RGB")
    width, height = image.size
    scale = size / float(max(height, width))
    new_h, new_w = round(height * scale), round(width * scale)
    if (new_h, new_w) != (height, width):
        image = TF.resize(image, [new_h, new_w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    pad_h, pad_w = size - new_h, size - new_w
    return TF.pad(image, [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=fill)


def pad_preprocess(
    images: Sequence[Any],
    size: int,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
) -> torch.Tensor:
    """Resize-longest-and-pad, to tensor in [0, 1], normalise. N PIL images → ``[N, 3, size, size]``."""
    import torchvision.transforms.functional as TF

    tensors = [TF.to_tensor(resize_longest_and_pad(im, size)) for im in images]
    batch = torch.stack(tensors)
    m = torch.tensor(mean, dtype=batch.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=batch.dtype).view(1, 3, 1, 1)
    return (batch - m) / s


def pad_preprocess_info(size: int, mean: Sequence[float], std: Sequence[float]) -> dict[str, Any]:
    import torchvision

    return {
        "geometry": "resize longest side, zero-pad (black) before normalisation, no crop",
        "size": size,
        "interpolation": "bicubic",
        "antialias": True,
        "backend": f"torchvision {torchvision.__version__} on PIL images",
        "mean": list(mean),
        "std": list(std),
    }


def load_clip_image_processor(folder: str | Path) -> Any:
    """The CLIP image processor of a model folder or hub id, PIL backend (as the original scorers ran)."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil.from_pretrained(str(folder))


def _plain_size(size: Any) -> Any:
    """A transformers ``SizeDict`` (or dict) as a plain dict without the unset entries."""
    items = size.items() if isinstance(size, dict) else vars(size).items()
    return {k: v for k, v in items if v is not None}


def crop_preprocess_info(processor: Any) -> dict[str, Any]:
    return {
        "geometry": "resize shorter side, centre crop",
        "processor": type(processor).__name__,
        "size": _plain_size(processor.size),
        "crop_size": _plain_size(processor.crop_size),
        "resample": int(processor.resample),
        "mean": list(processor.image_mean),
        "std": list(processor.image_std),
    }
