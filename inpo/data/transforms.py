"""Pair transforms (spec §4): shorter side → ``resolution``, centre or random crop, independent
horizontal flips of winner and loser, pixels to [-1, 1]; caption dropout shared by the pair. Each
image's original size and crop offset (:class:`ImageGeometry`) feed SDXL's micro-conditioning.

Resizing is PIL's antialiased resize (``bilinear`` by default, as the Diffusion-DPO/InPO training
scripts' ``transforms.Resize``; ``bicubic`` on request), sizes as torchvision computes them: the
shorter side becomes ``resolution``, the longer ``int(resolution * long / short)``. The centre crop's
offsets are torchvision's ``int(round((size - resolution) / 2))``.

Every draw of a pair comes from its own ``"data"`` generator (:func:`inpo.rng.pair_generator`), seven
uniforms in a fixed order whatever the settings, so a draw never depends on the batch, the settings
of the other transforms, or resumption.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

INTERPOLATION = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
CROP_MODES = ("center", "random")


@dataclass(frozen=True)
class PairDraws:
    """One pair's random decisions. ``crop_*`` are uniforms in [0, 1) for (top, left), used by random crop."""

    caption_dropped: bool
    flip_w: bool
    flip_l: bool
    crop_w: tuple[float, float]
    crop_l: tuple[float, float]


def draw_pair(gen: torch.Generator, caption_dropout: float, random_flip: bool) -> PairDraws:
    """Draw ``u = rand(7)``: u0 caption dropout, u1/u2 flips of winner/loser, u3..u6 crop offsets."""
    u = torch.rand(7, generator=gen, dtype=torch.float64).tolist()
    return PairDraws(
        caption_dropped=u[0] < caption_dropout,
        flip_w=random_flip and u[1] < 0.5,
        flip_l=random_flip and u[2] < 0.5,
        crop_w=(u[3], u[4]),
        crop_l=(u[5], u[6]),
    )


def resized_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(width, height) with the shorter side = ``resolution`` (torchvision's rounding: int())."""
    if width <= height:
        return resolution, int(resolution * height / width)
    return int(resolution * width / height), resolution


def crop_offsets(
    width: int, height: int, resolution: int, mode: str, u: tuple[float, float]
) -> tuple[int, int]:
    """(top, left) of the ``resolution`` square: centred, or uniform over the valid offsets from ``u``."""
    if mode == "center":
        return int(round((height - resolution) / 2.0)), int(round((width - resolution) / 2.0))
    if mode == "random":
        top = min(int(u[0] * (height - resolution + 1)), height - resolution)
        left = min(int(u[1] * (width - resolution + 1)), width - resolution)
        return top, left
    raise ValueError(f"data.crop: {mode!r}; expected one of {', '.join(CROP_MODES)}")


def to_signed_unit(img: Image.Image) -> torch.Tensor:
    """RGB uint8 image → float32 [3, H, W] in [-1, 1]: ``(x / 255 - 0.5) / 0.5`` (ToTensor + Normalize)."""
    pixels = torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8, copy=True)).permute(2, 0, 1)
    return (pixels.float() / 255.0 - 0.5) / 0.5


@dataclass(frozen=True)
class ImageGeometry:
    """Where a training image came from, for SDXL's micro-conditioning (``model.sdxl_micro_conditioning``).

    original_size: (height, width) of the decoded image before resizing.
    crop_top_left: (top, left) of the crop in the resized image *as the output shows it*: for a flipped
    image the left offset is measured in the flipped frame (``resized_width - R - left``), which is what
    diffusers' SDXL training script records (it flips, then crops, then stores the crop's (y1, x1)).
    """

    original_size: tuple[int, int]
    crop_top_left: tuple[int, int]


def transform_image_with_geometry(
    img: Image.Image, resolution: int, crop: str, interpolation: str, flip: bool, crop_u: tuple[float, float]
) -> tuple[torch.Tensor, ImageGeometry]:
    """Resize shorter side, crop to ``resolution``², maybe flip left-right → (image [3, R, R] in [-1, 1],
    its :class:`ImageGeometry`)."""
    if interpolation not in INTERPOLATION:
        raise ValueError(f"data.interpolation: {interpolation!r}; expected one of {', '.join(INTERPOLATION)}")
    original_size = (img.height, img.width)
    width, height = resized_size(img.width, img.height, resolution)
    if (width, height) != img.size:
        img = img.resize((width, height), INTERPOLATION[interpolation])
    top, left = crop_offsets(width, height, resolution, crop, crop_u)
    img = img.crop((left, top, left + resolution, top + resolution))
    if flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        left = width - resolution - left
    return to_signed_unit(img), ImageGeometry(original_size, (top, left))


def transform_image(
    img: Image.Image, resolution: int, crop: str, interpolation: str, flip: bool, crop_u: tuple[float, float]
) -> torch.Tensor:
    """Resize shorter side, crop to ``resolution``², maybe flip left-right → [3, R, R] in [-1, 1]."""
    return transform_image_with_geometry(img, resolution, crop, interpolation, flip, crop_u)[0]
