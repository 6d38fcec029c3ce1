"""DDIM sampling of a toy model with classifier-free guidance (diffusers' DDIMScheduler, eta 0).

Each image's initial noise comes from its own seed, so an image does not depend on batch layout:
the same (prompt, seed) gives the same image for any batch size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .model import ToyModel


@torch.no_grad()
def encode_prompts(model: ToyModel, prompts: Sequence[str]) -> torch.Tensor:
    """Prompts → [N, max_tokens, hidden] text-encoder states (padded to the tokenizer's length)."""
    tok = model.tokenizer
    ids = tok(
        list(prompts),
        padding="max_length",
        max_length=tok.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return model.text_encoder(ids.input_ids.to(model.text_encoder.device))[0]


def initial_noise(seeds: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
    """One ``randn(shape)`` per seed → [N, *shape]."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.no_grad()
def ddim_sample(
    model: ToyModel,
    prompts: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    guidance: float,
    batch_size: int = 256,
) -> torch.Tensor:
    """DDIM (eta 0) samples → [N, 3, H, W] in model space (pixels, unclamped, ≈ [-1, 1]).

    noise_pred = eps(x, t, "") + guidance · (eps(x, t, prompt) - eps(x, t, "")).
    """
    from diffusers import DDIMScheduler

    if len(prompts) != len(seeds):
        raise ValueError(f"ddim_sample: {len(prompts)} prompts but {len(seeds)} seeds")
    unet = model.unet
    size = unet.config.sample_size
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    scheduler.set_timesteps(steps)
    uncond = encode_prompts(model, [""])
    out = []
    for start in range(0, len(prompts), batch_size):
        batch_prompts = list(prompts[start : start + batch_size])
        n = len(batch_prompts)
        cond = encode_prompts(model, batch_prompts)
        context = torch.cat([uncond.expand(n, -1, -1), cond]) if guidance != 1.0 else cond
        x = initial_noise(seeds[start : start + batch_size], (unet.config.in_channels, size, size))
        x = x.to(unet.device) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            if guidance != 1.0:
                eps_u, eps_c = unet(torch.cat([x, x]), t, context).sample.chunk(2)
                eps = eps_u + guidance * (eps_c - eps_u)
            else:
                eps = unet(x, t, context).sample
            x = scheduler.step(eps, t, x).prev_sample
        out.append(x)
    return torch.cat(out) if out else torch.zeros(0, 3, size, size)
