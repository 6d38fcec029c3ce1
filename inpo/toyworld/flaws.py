"""Systematic flaws a preference can fix: the weak base's training renders and the imperfect renders.

World ``toy-mixed`` trains its weak base by the shipped recipe (:mod:`inpo.toyworld.base`) on renders
with every flaw of ``toy.mixed`` applied, so the base learns them:

- **small shapes**: half-size ``r`` → ``max(1, round(size_scale · r))`` (the centre is kept);
- **greyed colours**: ``x ← (1 − grey_pull) · x + grey_pull · 0.5`` on every pixel;
- **soft edges**: ``blur_passes`` passes of the separable binomial kernel ``[1, 2, 1] / 4``
  (edge pixels replicated);
- **wrong captions**: a ``wrong_colour_rate`` fraction of captions name another colour for the shape
  (never the background's, and only ones that are training prompts).

The third generator of the mixed pairs, :func:`imperfect_renders`, draws the prompt's scene with one
flat imperfection each: a colour error of norm ``render_colour_shift``, one blur pass, or an
off-template half-size (one pixel smaller or larger than the world's sizes).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from .world import COLOURS, Scene, parse_prompt, prompt_for, random_scenes, render, size_range

if TYPE_CHECKING:
    from ..config.sections import ToyMixedConfig

GREY = 0.5
IMPERFECTIONS = ("colour_shift", "blur", "off_size")


def shrink(scenes: list[Scene], size_scale: float) -> list[Scene]:
    """Half-sizes × ``size_scale`` (rounded, at least 1); centres kept."""
    return [replace(s, r=max(1, round(size_scale * s.r))) for s in scenes]


def pull_to_grey(images: torch.Tensor, amount: float) -> torch.Tensor:
    """images [N, 3, H, W] in [0, 1] → ``(1 − amount) · x + amount · 0.5``, same shape."""
    return (1.0 - amount) * images + amount * GREY


def blur(images: torch.Tensor, passes: int = 1) -> torch.Tensor:
    """images [N, C, H, W] → the same shape after ``passes`` separable ``[1, 2, 1] / 4`` passes
    (replicate padding, so a flat image stays flat)."""
    kernel = torch.tensor([0.25, 0.5, 0.25], dtype=images.dtype)
    c = images.shape[1]
    horizontal = kernel.view(1, 1, 1, 3).repeat(c, 1, 1, 1)
    vertical = kernel.view(1, 1, 3, 1).repeat(c, 1, 1, 1)
    x = images
    for _ in range(passes):
        x = torch.nn.functional.conv2d(
            torch.nn.functional.pad(x, (1, 1, 0, 0), "replicate"), horizontal, groups=c
        )
        x = torch.nn.functional.conv2d(
            torch.nn.functional.pad(x, (0, 0, 1, 1), "replicate"), vertical, groups=c
        )
    return x


def wrong_colour_variants(prompts: list[str]) -> list[list[int]]:
    """For each prompt, the indices of the other ``prompts`` that differ from it only in the shape's
    colour (so a wrong caption is still a training prompt: held-out prompts stay unseen)."""
    index = {p: i for i, p in enumerate(prompts)}
    out = []
    for prompt in prompts:
        colour, shape, background = parse_prompt(prompt)
        variants = [prompt_for(c, shape, background) for c in COLOURS if c not in (colour, background)]
        out.append([index[v] for v in variants if v in index])
    return out


def wrong_captions(
    idx: torch.Tensor, variants: list[list[int]], rate: float, generator: torch.Generator
) -> torch.Tensor:
    """idx [B] prompt indices → [B]: each replaced with probability ``rate`` by one of its
    wrong-colour ``variants`` (drawn from ``generator``; a prompt without variants is kept)."""
    out = idx.clone()
    wrong = torch.rand(len(idx), generator=generator) < rate
    for row in torch.nonzero(wrong).flatten().tolist():
        choices = variants[int(idx[row])]
        if choices:
            out[row] = choices[int(torch.randint(len(choices), (1,), generator=generator))]
    return out


def flawed_renders(scenes: list[Scene], resolution: int, cfg: ToyMixedConfig) -> torch.Tensor:
    """The weak base's training images: scenes shrunk, rendered, greyed and blurred → [N, 3, H, W] in [0, 1]."""
    images = render(shrink(scenes, cfg.size_scale), resolution)
    return blur(pull_to_grey(images, cfg.grey_pull), cfg.blur_passes)


def imperfect_renders(
    prompts: list[str], resolution: int, colour_shift: float, generator: torch.Generator
) -> tuple[torch.Tensor, list[str]]:
    """The prompts' scenes, each with one flat imperfection drawn uniformly from :data:`IMPERFECTIONS`
    → images [N, 3, H, W] in [0, 1] and the imperfection of each."""
    scenes = random_scenes(prompts, resolution, generator)
    kinds = [
        IMPERFECTIONS[int(i)] for i in torch.randint(len(IMPERFECTIONS), (len(prompts),), generator=generator)
    ]
    sizes = size_range(resolution)
    off = [sizes.start - 1, sizes.stop]  # one pixel outside the world's half-sizes
    scenes = [
        replace(s, r=off[int(torch.randint(2, (1,), generator=generator))]) if k == "off_size" else s
        for s, k in zip(scenes, kinds)
    ]
    images = render(scenes, resolution)
    shift = torch.randn(len(prompts), 3, 1, 1, generator=generator)
    shift = colour_shift * shift / shift.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
    is_shift = torch.tensor([k == "colour_shift" for k in kinds]).view(-1, 1, 1, 1)
    images = torch.where(is_shift, (images + shift).clamp(0, 1), images)
    is_blur = torch.tensor([k == "blur" for k in kinds]).view(-1, 1, 1, 1)
    return torch.where(is_blur, blur(images, 1), images), kinds
