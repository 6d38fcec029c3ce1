"""Sampling of a toy model in chunks (DDIM, or flow Euler for a flow base), through the project's sampler (:mod:`inpo.sampling`).

Each image's initial noise comes from its own seed, so an image does not depend on batch layout:
the same (prompt, seed) gives the same image for any chunk size, and the same image the evaluation
stage gets for that item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..models import Components


@torch.no_grad()
def sample_toy(
    model: Components,
    prompts: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    guidance: float,
    batch_size: int = 256,
) -> torch.Tensor:
    """DDIM (eta 0) samples with CFG ``guidance`` → [N, 3, H, W] pixels in [-1, 1] (clamped); a
    flow-matching model samples with the flow Euler scheduler instead (:func:`toy_sampler`)."""
    from ..sampling import sample_images

    if len(prompts) != len(seeds):
        raise ValueError(f"sample_toy: {len(prompts)} prompts but {len(seeds)} seeds")
    size = int(model.unet.config.sample_size)
    chunks = [
        sample_images(
            model,
            model.unet,
            list(prompts[i : i + batch_size]),
            list(seeds[i : i + batch_size]),
            steps=steps,
            guidance=guidance,
            scheduler=toy_sampler(model),
            resolution=size,
        )
        for i in range(0, len(prompts), batch_size)
    ]
    return torch.cat(chunks) if chunks else torch.zeros(0, 3, size, size)


def toy_sampler(model: Components) -> str:
    """The sampling scheduler of a toy model: DDIM, or flow Euler for a flow-matching one."""
    return "flow_euler" if model.parametrisation.flow else "ddim"
