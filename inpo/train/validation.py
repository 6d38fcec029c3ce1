"""Validation during training: a fixed-prompt, fixed-seed sample grid and a quick score.

The world gives the prompts and, where it has an exact judge, the score (the toy world: the oracle
and its guard metric, prompt-following accuracy), so over-optimisation shows while it happens.
Worlds without one get the grid only (their evaluators are too heavy for a validation hook; the
evaluation stage scores them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..layout import VALIDATION_GRIDS

VALIDATION_STEPS = 20


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """Save [N, 3, H, W] images in [-1, 1] as one PNG grid (atomically)."""
    from torchvision.utils import make_grid

    from ..io import write_png_atomic
    from ..sampling import to_pil

    grid = make_grid(images, nrow=nrow, padding=1, pad_value=1.0)
    write_png_atomic(path, to_pil(grid.unsqueeze(0))[0])


def validation_hook(cfg: Config):
    """A ``(step, unet, components, out_dir) -> metrics`` callable for :func:`inpo.train.loop.train`."""
    from ..worlds import get_world

    world = get_world(cfg)
    prompts = world.validation_prompts(cfg)
    seeds = [cfg.sample.seed] * len(prompts)

    def validate(step: int, unet: torch.nn.Module, components: Any, out_dir: Path) -> dict[str, float]:
        from ..sampling import sample_images, to_pil

        images = sample_images(
            components,
            unet,
            prompts,
            seeds,
            steps=VALIDATION_STEPS,
            guidance=cfg.sample.guidance,
            scheduler=cfg.sample.scheduler,
            resolution=cfg.data.resolution,
        )
        save_grid(images, out_dir / VALIDATION_GRIDS / f"step-{step:06d}.png")
        return world.validation_scores(to_pil(images), prompts)

    return validate
