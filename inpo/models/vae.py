"""Images ↔ model space: the VAE's scaled latents, or the pixels themselves for a pixel-space model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .loading import Components


def _scale_shift(components: Components) -> tuple[float, float]:
    assert components.vae is not None
    config = components.vae.config
    shift = getattr(config, "shift_factor", None)
    return float(config.scaling_factor), float(shift) if shift is not None else 0.0


@torch.no_grad()
def encode_images(
    components: Components,
    images: torch.Tensor,
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> torch.Tensor:
    """x0 = (latent mean − shift) × scaling_factor, [B, 3, H, W] in [-1, 1] → [B, C, H/f, W/f] fp32.

    The latent mean (spec §5), not a random sample, unless ``generator`` is given: then one sample of
    the latent distribution (a list gives each row its own generator, e.g. per-pair streams).
    The VAE runs in its own dtype (fp32 when ``model.upcast_vae``). Pixel space: the images, fp32.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"encode_images: expected images [B, 3, H, W], got {tuple(images.shape)}")
    if components.vae is None:
        return images.to(torch.float32)
    vae = components.vae
    dist = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist
    latents = dist.mean if generator is None else dist.sample(generator=generator)
    scale, shift = _scale_shift(components)
    return ((latents - shift) * scale).to(torch.float32)


@torch.no_grad()
def decode_latents(components: Components, latents: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (clamped) from scaled latents, [B, C, h, w] → [B, 3, h·f, w·f] fp32."""
    if components.vae is None:
        return latents.to(torch.float32).clamp(-1, 1)
    vae = components.vae
    scale, shift = _scale_shift(components)
    z = latents.to(device=vae.device, dtype=vae.dtype) / scale + shift
    return vae.decode(z, return_dict=False)[0].to(torch.float32).clamp(-1, 1)
