"""The toy world: one flat-coloured shape on a flat-coloured background, and its prompt.

A scene is (shape, shape colour, background colour, centre, half-size). Geometry is discrete so
the oracle's template bank holds every scene the world can render exactly:

- pixel ``(row y, column x)`` has its centre at ``(x + 0.5, y + 0.5)``;
- the shape centre ``(cx, cy)`` is an integer (a pixel corner), the half-size ``r`` an integer;
- ``r`` ranges over ``size_range(resolution)``; centres keep a one-pixel background margin, so the
  outer ring of pixels is always background.

Prompts read ``"a {colour} {shape} on a {background} background"``; shape colour != background.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
GLUE_WORDS: tuple[str, ...] = ("a", "on", "background")
VOCABULARY: tuple[str, ...] = (*COLOURS, *SHAPES, *GLUE_WORDS)

_PROMPT = re.compile(r"^a (?P<colour>\w+) (?P<shape>\w+) on a (?P<background>\w+) background$")


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    background: str
    cx: int
    cy: int
    r: int


def prompt_for(colour: str, shape: str, background: str) -> str:
    """The prompt of one (colour, shape, background) combination."""
    return f"a {colour} {shape} on a {background} background"


def parse_prompt(prompt: str) -> tuple[str, str, str]:
    """``"a red circle on a blue background"`` → ``("red", "circle", "blue")``; anything else raises."""
    match = _PROMPT.match(prompt.strip().lower())
    if match is None:
        raise ValueError(f"toy prompt {prompt!r}: expected 'a <colour> <shape> on a <colour> background'")
    colour, shape, background = match["colour"], match["shape"], match["background"]
    for word, valid in ((colour, COLOURS), (shape, SHAPES), (background, COLOURS)):
        if word not in valid:
            raise ValueError(
                f"toy prompt {prompt!r}: unknown word {word!r}; expected one of {', '.join(valid)}"
            )
    if colour == background:
        raise ValueError(f"toy prompt {prompt!r}: shape and background have the same colour")
    return colour, shape, background


def size_range(resolution: int) -> range:
    """Half-sizes a scene may have: 1/4 to 3/8 of the side (4..6 px at 16 px)."""
    lo, hi = max(2, round(resolution * 0.25)), max(2, round(resolution * 0.375))
    return range(lo, hi + 1)


def centre_range(resolution: int, r: int) -> range:
    """Integer centres that keep a one-pixel background margin around a shape of half-size ``r``."""
    return range(r + 1, resolution - r - 1 + 1)


def shape_masks(
    shape: str, cx: torch.Tensor, cy: torch.Tensor, r: torch.Tensor, resolution: int
) -> torch.Tensor:
    """Boolean masks of one shape kind at many placements.

    cx, cy, r: [N] (integer-valued) → [N, resolution, resolution], True inside the shape.
    """
    centres = torch.arange(resolution, dtype=torch.float32) + 0.5
    dx = centres.view(1, 1, -1) - cx.float().view(-1, 1, 1)  # [N, 1, W]
    dy = centres.view(1, -1, 1) - cy.float().view(-1, 1, 1)  # [N, H, 1]
    rr = r.float().view(-1, 1, 1)
    if shape == "circle":
        return dx**2 + dy**2 <= rr**2
    if shape == "square":
        return (dx.abs() < rr) & (dy.abs() < rr)
    if shape == "triangle":  # apex up at cy - r, base on cy + r
        depth = (dy + 0.5 + rr) / (2 * rr)  # at the pixel's lower edge: 0 at the apex, 1 at the base
        return (dy.abs() < rr) & (dx.abs() <= rr * depth)
    if shape == "cross":  # a plus sign: two bars of half-thickness 0.3 r
        arm = 0.3 * rr
        return ((dx.abs() < rr) & (dy.abs() < arm)) | ((dy.abs() < rr) & (dx.abs() < arm))
    raise ValueError(f"unknown toy shape {shape!r}; expected one of {', '.join(SHAPES)}")


def palette(names: list[str] | tuple[str, ...]) -> torch.Tensor:
    """Colour names → [N, 3] float32 RGB in [0, 1]."""
    return torch.tensor([COLOURS[n] for n in names], dtype=torch.float32) / 255.0


def render(scenes: list[Scene], resolution: int) -> torch.Tensor:
    """Scenes → [N, 3, H, W] float32 RGB in [0, 1] (flat colours, hard edges)."""
    masks = torch.zeros(len(scenes), resolution, resolution, dtype=torch.bool)
    for shape in SHAPES:
        idx = [i for i, s in enumerate(scenes) if s.shape == shape]
        if idx:
            sel = [scenes[i] for i in idx]
            masks[idx] = shape_masks(
                shape,
                torch.tensor([s.cx for s in sel]),
                torch.tensor([s.cy for s in sel]),
                torch.tensor([s.r for s in sel]),
                resolution,
            )
    fg = palette([s.colour for s in scenes]).view(-1, 3, 1, 1)
    bg = palette([s.background for s in scenes]).view(-1, 3, 1, 1)
    return torch.where(masks.unsqueeze(1), fg, bg)


def random_scenes(prompts: list[str], resolution: int, generator: torch.Generator) -> list[Scene]:
    """One scene per prompt with a random half-size and centre drawn from ``generator``."""
    sizes = list(size_range(resolution))
    scenes = []
    for prompt in prompts:
        colour, shape, background = parse_prompt(prompt)
        r = sizes[int(torch.randint(len(sizes), (1,), generator=generator))]
        centres = centre_range(resolution, r)
        cx, cy = (centres[int(i)] for i in torch.randint(len(centres), (2,), generator=generator))
        scenes.append(Scene(shape, colour, background, cx, cy, r))
    return scenes


def images_to_tensor(images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
    """PIL images (RGB, square) or a [N, 3, H, W] tensor in [0, 1] → [N, 3, H, W] float32 in [0, 1]."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape [N, 3, H, W]; got {tuple(images.shape)}")
        return images.float()
    if len(images) == 0:
        return torch.zeros(0, 3, 0, 0)
    arrays = [np.asarray(img.convert("RGB"), dtype=np.uint8) for img in images]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"images differ in size: {sorted({a.shape for a in arrays})}")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
