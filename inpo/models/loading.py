"""Load a model family's components (the project's only ``from_pretrained`` calls live in this package).

A base is a hub id or a local diffusers folder with ``unet/``, ``vae/`` (optional for the toy world:
no ``vae/`` means the UNet works in pixel space), ``text_encoder/`` + ``tokenizer/`` (SDXL also
``text_encoder_2/`` + ``tokenizer_2/``) and ``scheduler/``. ``model.unet`` / ``model.vae`` replace the
base's UNet / VAE (e.g. an SFT UNet, an fp16-fix VAE); ``model.unet_lora`` merges a LoRA adapter
(e.g. an SFT LoRA) into the UNet before anything else sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from inpo.parametrisation import EPSILON, FLOW_SCHEDULERS, Parametrisation, levels_of, parametrisation_of

if TYPE_CHECKING:
    from inpo.config.sections import ModelConfig


@dataclass(frozen=True)
class FamilySpec:
    """What a model family's folder holds and how its text conditioning is formed."""

    text_encoders: int  # 1: SD1.5 layout; 2: SDXL (second encoder with projection → pooled embedding)
    requires_vae: bool  # False: a folder without vae/ is a pixel-space model (toy world)
    addition_embed_type: str | None  # what the UNet config must say ("text_time" for SDXL)
    linear_projection: bool | None = None  # the UNet's use_linear_projection (None: either)


FAMILIES: dict[str, FamilySpec] = {
    "sd15": FamilySpec(text_encoders=1, requires_vae=True, addition_embed_type=None, linear_projection=False),
    # SD2.x: SD1.5's layout and conditioning with the OpenCLIP ViT-H text encoder (CLIPTextModel
    # format, penultimate layer); 512-base predicts epsilon, 768-v v_prediction (the scheduler says)
    "sd2": FamilySpec(text_encoders=1, requires_vae=True, addition_embed_type=None, linear_projection=True),
    "sdxl": FamilySpec(text_encoders=2, requires_vae=True, addition_embed_type="text_time"),
    "toy": FamilySpec(text_encoders=1, requires_vae=False, addition_embed_type=None),
}


def family_spec(family: str) -> FamilySpec:
    """The registry entry for ``family``; an unknown name lists the valid ones."""
    if family not in FAMILIES:
        raise ValueError(f"model.family: unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[family]


@dataclass
class Components:
    """Everything a training or sampling run needs from one base model.

    ``levels`` is the scheduler's table, [num_train_timesteps] float32 on the CPU (move it where it
    is used): ``abar`` (alphas_cumprod) for DDPM-type models, the sigmas for flow matching
    (:func:`inpo.parametrisation.levels_of`). ``vae`` is None for a pixel-space model.
    """

    # diffusers/transformers classes are typed ``Any``: mypy cannot see their attributes (``.config``)
    family: str
    unet: Any  # diffusers.UNet2DConditionModel
    vae: Any  # diffusers.AutoencoderKL, or None: pixel space
    text_encoder: Any  # transformers.CLIPTextModel
    tokenizer: Any  # transformers.CLIPTokenizer
    scheduler: Any  # diffusers.DDPMScheduler, or FlowMatchEulerDiscreteScheduler for a flow model
    levels: torch.Tensor
    text_encoder_2: Any = None  # transformers.CLIPTextModelWithProjection (SDXL)
    tokenizer_2: Any = None  # transformers.CLIPTokenizer (SDXL)
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32  # of the frozen modules (text encoders; VAE unless upcast)
    micro_conditioning: str = "constant"  # SDXL: "constant" (R, R, 0, 0, R, R) or "real" sizes/crops
    parametrisation: Parametrisation = EPSILON  # what the UNet predicts (the scheduler's prediction_type)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        if self.parametrisation.flow:
            raise ValueError("a flow-matching model has sigmas, not alphas_cumprod: use Components.levels")
        return self.levels

    @property
    def is_sdxl(self) -> bool:
        return self.text_encoder_2 is not None

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell along one side (8 for SD; 1 in pixel space)."""
        if self.vae is None:
            return 1
        return int(2 ** (len(self.vae.config.block_out_channels) - 1))

    @property
    def latent_channels(self) -> int:
        return 3 if self.vae is None else int(self.vae.config.latent_channels)

    @property
    def native_resolution(self) -> int:
        """The image side the UNet was configured for (512 for SD1.5, 1024 for SDXL)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor


def _is_local(name: str) -> bool:
    return Path(name).exists()


def _has_subfolder(pretrained: str, subfolder: str, revision: str | None) -> bool:
    """Whether the base folder or hub repo holds ``subfolder`` (local: a folder; hub: model_index.json)."""
    if _is_local(pretrained):
        return (Path(pretrained) / subfolder).is_dir()
    from diffusers import DiffusionPipeline

    index: dict[str, Any] = DiffusionPipeline.load_config(pretrained, revision=revision)
    entry = index.get(subfolder)
    return isinstance(entry, list | tuple) and entry[0] is not None


def _load_override(cls: Any, path: str, subfolder: str, dtype: torch.dtype) -> Any:
    """A replacement UNet/VAE is a model folder, or a pipeline folder holding it (``unet/``, ``vae/``)."""
    local = Path(path)
    if (
        local.is_dir()
        and not (local / "config.json").exists()
        and (local / subfolder / "config.json").exists()
    ):
        return cls.from_pretrained(path, subfolder=subfolder, torch_dtype=dtype)
    return cls.from_pretrained(path, torch_dtype=dtype)


def _freeze(module: torch.nn.Module) -> None:
    module.requires_grad_(False)
    module.eval()


def load_components(
    model_cfg: ModelConfig,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    unet_dtype: torch.dtype = torch.float32,
) -> Components:
    """Load UNet, VAE, text encoder(s), tokenizer(s) and noise scheduler of ``model_cfg``.

    ``dtype`` is for the frozen modules (text encoders, and the VAE unless ``model.upcast_vae``,
    which keeps it fp32); ``unet_dtype`` for the UNet (fp32 master weights when training; pass the
    half dtype for inference). Text encoders and VAE are frozen and in eval mode; the UNet's
    ``requires_grad`` is left as loaded (True). Refuses a scheduler that does not predict epsilon
    and a UNet whose architecture does not match ``model.family``.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    spec = family_spec(model_cfg.family)
    base = model_cfg.base
    hub: dict[str, Any] = {"revision": model_cfg.revision}
    weights: dict[str, Any] = {**hub, "variant": model_cfg.variant}
    device = torch.device(device)

    scheduler = load_training_scheduler(base, model_cfg.revision)
    try:
        parametrisation = parametrisation_of(scheduler)
    except ValueError as err:
        raise ValueError(f"{base}/scheduler: {err}") from err

    if model_cfg.unet is not None:
        unet = _load_override(UNet2DConditionModel, model_cfg.unet, "unet", unet_dtype)
    else:
        unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", torch_dtype=unet_dtype, **weights)
    if model_cfg.unet_lora is not None:
        from .saving import load_lora_and_merge

        load_lora_and_merge(unet, model_cfg.unet_lora)
    _check_unet_family(unet, model_cfg.family, spec)

    vae_dtype = torch.float32 if model_cfg.upcast_vae else dtype
    vae: Any = None
    if model_cfg.vae is not None:
        vae = _load_override(AutoencoderKL, model_cfg.vae, "vae", vae_dtype)
    elif spec.requires_vae and _is_local(base) and not (Path(base) / "vae").is_dir():
        raise ValueError(
            f"{base}: model.family={model_cfg.family!r} needs a VAE but the folder has no vae/ "
            "(set model.vae, or model.family=toy for a pixel-space model)"
        )
    elif spec.requires_vae or _has_subfolder(base, "vae", model_cfg.revision):
        vae = AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=vae_dtype, **weights)
    latent_channels = 3 if vae is None else int(vae.config.latent_channels)
    if int(unet.config.in_channels) != latent_channels:
        where = "pixel space (no vae/)" if vae is None else f"the VAE's {latent_channels} latent channels"
        raise ValueError(
            f"{base}: the UNet takes {unet.config.in_channels} input channels but {where} needs {latent_channels}"
        )

    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", dtype=dtype, **weights)
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer", **hub)
    text_encoder_2 = tokenizer_2 = None
    if spec.text_encoders == 2:
        text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(
            base, subfolder="text_encoder_2", dtype=dtype, **weights
        )
        tokenizer_2 = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer_2", **hub)

    frozen_modules: list[Any] = [vae, text_encoder, text_encoder_2]
    for frozen in frozen_modules:
        if frozen is not None:
            _freeze(frozen)
            frozen.to(device)
    unet.to(device)
    return Components(
        family=model_cfg.family,
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        levels=levels_of(scheduler),
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        device=device,
        dtype=dtype,
        micro_conditioning=model_cfg.sdxl_micro_conditioning,
        parametrisation=parametrisation,
    )


def load_training_scheduler(base: str, revision: str | None = None) -> Any:
    """The base's ``scheduler/`` as its training scheduler: FlowMatchEulerDiscreteScheduler for a
    flow-matching model (its config's ``_class_name``), else DDPMScheduler (SD's DDIM/PNDM configs
    carry the same training schedule)."""
    from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

    config = DDPMScheduler.load_config(base, subfolder="scheduler", revision=revision)
    cls = FlowMatchEulerDiscreteScheduler if config.get("_class_name") in FLOW_SCHEDULERS else DDPMScheduler
    return cls.from_pretrained(base, subfolder="scheduler", revision=revision)


def is_flow_model(model_cfg: ModelConfig) -> bool:
    """Whether the base's scheduler config names a flow-matching scheduler (read without loading
    weights; False when it cannot be read: the loader says why later)."""
    from diffusers import DDPMScheduler

    try:
        config = DDPMScheduler.load_config(model_cfg.base, subfolder="scheduler", revision=model_cfg.revision)
    except Exception:  # noqa: BLE001 - missing or unreachable: not this check's to report
        return False
    return config.get("_class_name") in FLOW_SCHEDULERS


def _check_unet_family(unet: Any, family: str, spec: FamilySpec) -> None:
    found = unet.config.addition_embed_type
    if found != spec.addition_embed_type:
        raise ValueError(
            f"model.family={family!r} expects a UNet with addition_embed_type={spec.addition_embed_type!r}, "
            f"but the loaded UNet has {found!r}; set model.family to match the checkpoint"
        )
    linear = bool(unet.config.use_linear_projection)
    if spec.linear_projection is not None and linear != spec.linear_projection:
        raise ValueError(
            f"model.family={family!r} expects a UNet with use_linear_projection={spec.linear_projection}, "
            f"but the loaded UNet has {linear} (SD2.x UNets have it, SD1.5's do not); set model.family "
            "to match the checkpoint"
        )
