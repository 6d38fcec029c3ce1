"""The toy world's "human preference": an exact programmatic score of an image and its prompt.

For prompt (colour k, shape s, background b) and image x (RGB in [0, 1]), each pixel p gets its
**closeness** to a colour c: ``close(p, c) = exp(-||x_p - c||² / (2 sigma²))`` (1 at the exact colour,
0.94 at a slight error of 0.09, under 0.06 at any other palette colour, which lie ≥ 0.6 away). For
every placement M of shape s the world can render (the template bank: every half-size and centre),
three factors in [0, 1]:

    colour     = mean over p in M      of close(p, k)        # the shape is the prompted colour
    background = mean over p not in M  of close(p, b)        # the rest is clean prompted background
    shape_iou  = IoU(M, {p : close(p, k) >= 1/2})            # the k-coloured pixels form that shape

    score = max over M of colour · background · shape_iou

The product makes every aspect necessary: painting the image the prompted colour zeroes
``background``, an empty background zeroes ``colour``, the wrong shape lowers ``shape_iou`` and
``colour`` (the template's corners are off-colour). A rendered scene of the prompt scores exactly 1.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from .world import SHAPES, centre_range, images_to_tensor, palette, parse_prompt, shape_masks, size_range

SIGMA = 0.25  # width of the colour closeness kernel, in RGB units of [0, 1]
STRICT_SIGMA = 0.15  # the held-out variant's (online rounds' guard): near-miss colours score lower


@functools.lru_cache(maxsize=16)
def template_bank(shape: str, resolution: int) -> torch.Tensor:
    """Every placement of ``shape`` the world renders → [T, H*W] float32 masks (1 inside)."""
    params = [
        (cx, cy, r)
        for r in size_range(resolution)
        for cy in centre_range(resolution, r)
        for cx in centre_range(resolution, r)
    ]
    cx, cy, r = (torch.tensor(v) for v in zip(*params))
    return shape_masks(shape, cx, cy, r, resolution).flatten(1).float()


def closeness(pixels: torch.Tensor, colours: torch.Tensor, sigma: float) -> torch.Tensor:
    """pixels [N, P, 3], colours [N, 3] (RGB in [0, 1]) → [N, P] in (0, 1]: exp(-distance² / (2 sigma²))."""
    distance2 = (pixels - colours.unsqueeze(1)).pow(2).sum(-1)
    return torch.exp(-distance2 / (2 * sigma**2))


def oracle_terms(
    images: torch.Tensor, prompts: Sequence[str], sigma: float = SIGMA
) -> dict[str, torch.Tensor]:
    """images [N, 3, H, W] in [0, 1] → ``score``, ``colour``, ``background``, ``shape_iou``: each [N].

    The three factors are taken at the placement that maximises their product.
    """
    if len(images) != len(prompts):
        raise ValueError(f"oracle: {len(images)} images but {len(prompts)} prompts")
    n, _, h, w = images.shape
    if h != w:
        raise ValueError(f"oracle: toy images are square; got {h}x{w}")
    parsed = [parse_prompt(p) for p in prompts]
    pixels = images.float().flatten(2).transpose(1, 2)  # [N, P, 3]
    close_k = closeness(pixels, palette([c for c, _, _ in parsed]), sigma)  # [N, P]
    close_b = closeness(pixels, palette([b for _, _, b in parsed]), sigma)
    is_k = (close_k >= 0.5).float()
    out = {key: torch.zeros(n) for key in ("score", "colour", "background", "shape_iou")}
    for shape in SHAPES:
        idx = torch.tensor([i for i, (_, s, _) in enumerate(parsed) if s == shape], dtype=torch.long)
        if len(idx) == 0:
            continue
        bank = template_bank(shape, h)  # [T, P]
        area = bank.sum(1)  # [T]
        colour = close_k[idx] @ bank.T / area  # [n, T]
        background = close_b[idx] @ (1 - bank).T / (h * w - area)
        inter = is_k[idx] @ bank.T
        iou = inter / (is_k[idx].sum(1, keepdim=True) + area - inter)
        total = colour * background * iou
        best = total.argmax(1, keepdim=True)
        for key, value in (
            ("score", total),
            ("colour", colour),
            ("background", background),
            ("shape_iou", iou),
        ):
            out[key][idx] = value.gather(1, best).squeeze(1)
    return out


class OracleScorer:
    """The oracle behind the scorer interface: ``score(images, prompts) -> [N]`` float32 in [0, 1]."""

    name = "oracle"

    def __init__(self, sigma: float = SIGMA) -> None:
        if sigma <= 0:
            raise ValueError(f"oracle sigma must be > 0; got {sigma}")
        self.sigma = sigma

    def score(self, images: Sequence[Image.Image] | torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """PIL images (or [N, 3, H, W] in [0, 1]) and their prompts → [N] float32."""
        return oracle_terms(images_to_tensor(images), prompts, self.sigma)["score"].float()

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "programmatic",
            "range": [0.0, 1.0],
            "sigma": self.sigma,
            "formula": "max over placements of colour fidelity x background fidelity x shape IoU",
        }


class StrictOracleScorer(OracleScorer):
    """A held-out variant of the oracle, never used to label: the same factors with the stricter colour
    kernel ``STRICT_SIGMA`` (a rendered scene of the prompt still scores 1). Online rounds judge each
    round with it beside the labelling oracle, so a policy that games the labeller's tolerance shows."""

    name = "oracle_strict"

    def __init__(self) -> None:
        super().__init__(STRICT_SIGMA)
