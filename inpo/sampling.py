"""Fixed-seed sampling with a diffusers scheduler, for every model family (SD1.5, SDXL, pixel-space toy).

One image per (prompt, seed): its initial noise is ``randn`` from a CPU generator seeded with that
seed alone, so the same item gets the same noise for every model compared, whatever the batch
size, and the same seed gives bit-identical images across runs on the CPU. Classifier-free
guidance: eps = eps(∅) + w · (eps(c) − eps(∅)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "flow_euler": "FlowMatchEulerDiscreteScheduler",  # flow-matching models (SD3's own sampler)
}
FLOW_SAMPLERS = ("flow_euler",)


def make_scheduler(name: str, config: Any, flow: bool | None = None) -> Any:
    """A sampling scheduler built from the base's training-scheduler config (a flow-matching model
    samples with a flow scheduler, a DDPM-type model with the others; ``flow``: which the model is,
    None: as the config's ``_class_name`` says)."""
    import diffusers

    from .parametrisation import FLOW_SCHEDULERS

    if name not in SCHEDULERS:
        raise ValueError(
            f"sample.scheduler: unknown scheduler {name!r}; expected one of {', '.join(SCHEDULERS)}"
        )
    flow_model = config.get("_class_name") in FLOW_SCHEDULERS if flow is None else flow
    if flow_model != (name in FLOW_SAMPLERS):
        kind, fits = ("a flow-matching", FLOW_SAMPLERS) if flow_model else ("a DDPM-type", ("ddim", "euler", "dpm"))
        raise ValueError(f"sample.scheduler: {name!r} cannot sample {kind} model; use one of {', '.join(fits)}")
    return getattr(diffusers, SCHEDULERS[name]).from_config(config)


def initial_noise(seeds: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
    """[N, *shape] float32 noise, row i from ``torch.Generator().manual_seed(seeds[i])`` on the CPU."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.no_grad()
def sample_images(
    components: Any,
    unet: torch.nn.Module,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int,
    guidance: float,
    scheduler: str = "ddim",
    resolution: int | None = None,
) -> torch.Tensor:
    """Images [N, 3, H, W] in [-1, 1] (fp32, CPU) for ``prompts[i]`` with ``seeds[i]``."""
    from .models import decode_latents, encode_prompts, unet_eps

    if len(prompts) != len(seeds):
        raise ValueError(f"sample_images: {len(prompts)} prompts but {len(seeds)} seeds")
    res = resolution or components.native_resolution
    side = res // components.vae_scale_factor
    device = next(unet.parameters()).device
    dtype = next(unet.parameters()).dtype
    sched = make_scheduler(scheduler, components.scheduler.config, components.parametrisation.flow)
    sched.set_timesteps(steps)
    x = initial_noise(seeds, (components.latent_channels, side, side)).to(device)
    x = x * getattr(sched, "init_noise_sigma", 1.0)  # flow schedulers start at unit noise
    # SDXL "real" micro-conditioning at inference: the pipeline's default (full-size original, no crop)
    geometry = {"original_sizes": [(res, res)] * len(prompts), "crop_top_lefts": [(0, 0)] * len(prompts)}
    cond = encode_prompts(components, list(prompts), resolution=res, **geometry)
    if guidance != 1.0:
        uncond = encode_prompts(components, [""] * len(prompts), resolution=res, **geometry)
        cond = type(cond).cat([uncond, cond])
    was_training = unet.training
    unet.eval()
    for t in sched.timesteps:
        x_in = sched.scale_model_input(x, t) if hasattr(sched, "scale_model_input") else x
        if guidance != 1.0:
            eps_u, eps_c = unet_eps(unet, torch.cat([x_in, x_in]).to(dtype), t, cond).float().chunk(2)
            eps = eps_u + guidance * (eps_c - eps_u)
        else:
            eps = unet_eps(unet, x_in.to(dtype), t, cond).float()
        x = sched.step(eps, t, x).prev_sample
    unet.train(was_training)
    return decode_latents(components, x).cpu()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float → [0, 255] uint8, same shape."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_pil(images: torch.Tensor) -> list[Any]:
    """[-1, 1] float images [N, 3, H, W] → PIL RGB images."""
    from PIL import Image

    arr = to_uint8(images).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a, mode="RGB") for a in arr]
