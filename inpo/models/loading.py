"""Load a model family's components (the project's only ``from_pretrained`` calls live in this package).

A base is a hub id or a local diffusers folder with ``unet/`` (SD3: ``transformer/``), ``vae/``
(optional for the toy world: no ``vae/`` means the UNet works in pixel space), ``text_encoder/`` +
``tokenizer/`` (SDXL also ``text_encoder_2/`` + ``tokenizer_2/``; SD3 also ``…_3/``: T5) and
``scheduler/`` (:mod:`inpo.models.families`). The trained network is called "the UNet" throughout,
whatever its class. ``model.unet`` / ``model.vae`` replace the base's UNet (transformer) / VAE (e.g. an
SFT UNet, an fp16-fix VAE); ``model.unet_lora`` merges a LoRA adapter (e.g. an SFT LoRA) into the UNet
before anything else sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from inpo.parametrisation import EPSILON, FLOW_SCHEDULERS, Parametrisation, levels_of, parametrisation_of

from .families import FAMILIES, FamilySpec, family_spec, text_encoder_classes

__all__ = ["FAMILIES", "Components", "FamilySpec", "family_spec", "load_components"]

if TYPE_CHECKING:
    from inpo.config.sections import ModelConfig


@dataclass
class Components:
    """Everything a training or sampling run needs from one base model.

    ``levels`` is the scheduler's table, [num_train_timesteps] float32 on the CPU (move it where it
    is used): ``abar`` (alphas_cumprod) for DDPM-type models, the sigmas for flow matching
    (:func:`inpo.parametrisation.levels_of`). ``vae`` is None for a pixel-space model.
    """

    # diffusers/transformers classes are typed ``Any``: mypy cannot see their attributes (``.config``)
    family: str
    unet: Any  # the trained network: diffusers.UNet2DConditionModel, or SD3Transformer2DModel (sd3)
    vae: Any  # diffusers.AutoencoderKL, or None: pixel space
    text_encoder: Any  # transformers.CLIPTextModel
    tokenizer: Any  # transformers.CLIPTokenizer
    scheduler: Any  # diffusers.DDPMScheduler, or FlowMatchEulerDiscreteScheduler for a flow model
    levels: torch.Tensor
    text_encoder_2: Any = None  # transformers.CLIPTextModelWithProjection (SDXL, SD3)
    tokenizer_2: Any = None  # transformers.CLIPTokenizer (SDXL, SD3)
    text_encoder_3: Any = None  # transformers.T5EncoderModel (SD3 with model.sd3_t5=load)
    tokenizer_3: Any = None  # transformers.T5TokenizerFast (SD3 with model.sd3_t5=load)
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32  # of the frozen modules (text encoders; VAE unless upcast)
    micro_conditioning: str = "constant"  # SDXL: "constant" (R, R, 0, 0, R, R) or "real" sizes/crops
    parametrisation: Parametrisation = EPSILON  # what the UNet predicts (the scheduler's prediction_type)
    t5_mode: str = "load"  # SD3: model.sd3_t5 (load | zeros | drop)
    t5_max_length: int = 256  # SD3: model.sd3_max_sequence_length

    @property
    def spec(self) -> FamilySpec:
        return family_spec(self.family)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        if self.parametrisation.flow:
            raise ValueError("a flow-matching model has sigmas, not alphas_cumprod: use Components.levels")
        return self.levels

    @property
    def is_sdxl(self) -> bool:
        return self.spec.micro_conditioning

    @property
    def frozen_modules(self) -> list[Any]:
        """VAE and text encoders that are loaded (None entries left out)."""
        modules = [self.vae, self.text_encoder, self.text_encoder_2, self.text_encoder_3]
        return [m for m in modules if m is not None]

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
    """A replacement UNet/VAE is a model folder, or a pipeline folder holding it (``unet/`` or
    ``transformer/``, ``vae/``)."""
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
    """Load UNet (SD3: transformer), VAE, text encoder(s), tokenizer(s) and noise scheduler.

    ``dtype`` is for the frozen modules (text encoders, and the VAE unless ``model.upcast_vae``,
    which keeps it fp32); ``unet_dtype`` for the UNet (fp32 master weights when training; pass the
    half dtype for inference). Text encoders and VAE are frozen and in eval mode; the UNet's
    ``requires_grad`` is left as loaded (True). Refuses a scheduler of no known parametrisation
    and a UNet whose architecture does not match ``model.family``.
    """
    spec = family_spec(model_cfg.family)
    base = model_cfg.base
    device = torch.device(device)

    scheduler = load_training_scheduler(base, model_cfg.revision)
    try:
        parametrisation = parametrisation_of(scheduler)
    except ValueError as err:
        raise ValueError(f"{base}/scheduler: {err}") from err

    unet = _load_denoiser(model_cfg, spec, unet_dtype)
    vae = _load_vae(model_cfg, spec, dtype)
    latent_channels = 3 if vae is None else int(vae.config.latent_channels)
    if int(unet.config.in_channels) != latent_channels:
        where = "pixel space (no vae/)" if vae is None else f"the VAE's {latent_channels} latent channels"
        raise ValueError(
            f"{base}: the UNet takes {unet.config.in_channels} input channels but {where} needs {latent_channels}"
        )
    encoders = _load_text_encoders(model_cfg, spec, dtype)
    components = Components(
        family=model_cfg.family,
        unet=unet,
        vae=vae,
        scheduler=scheduler,
        levels=levels_of(scheduler),
        device=device,
        dtype=dtype,
        micro_conditioning=model_cfg.sdxl_micro_conditioning,
        parametrisation=parametrisation,
        t5_mode=model_cfg.sd3_t5,
        t5_max_length=model_cfg.sd3_max_sequence_length,
        **encoders,
    )
    for frozen in components.frozen_modules:
        _freeze(frozen)
        frozen.to(device)
    unet.to(device)
    return components


def load_for_sampling(
    model_cfg: ModelConfig, device: str | torch.device, dtype: torch.dtype, lora: str | None = None
) -> Components:
    """:func:`load_components` for inference: every module in ``dtype`` on ``device``, the UNet with
    the LoRA adapter folder ``lora`` merged (if given), frozen and in eval mode."""
    components = load_components(model_cfg, device=device, dtype=dtype, unet_dtype=dtype)
    if lora is not None:
        from .saving import load_lora_and_merge

        load_lora_and_merge(components.unet, lora)
    _freeze(components.unet)
    return components


def load_denoiser(model_cfg: ModelConfig, unet_dtype: torch.dtype = torch.float32) -> Any:
    """The family's trained network alone (on the CPU), as :func:`load_components` loads it."""
    return _load_denoiser(model_cfg, family_spec(model_cfg.family), unet_dtype)


def _load_denoiser(model_cfg: ModelConfig, spec: FamilySpec, unet_dtype: torch.dtype) -> Any:
    """The family's trained network, ``model.unet`` in its place if set, ``model.unet_lora`` merged."""
    cls = spec.denoiser_class
    weights: dict[str, Any] = {"revision": model_cfg.revision, "variant": model_cfg.variant}
    if model_cfg.unet is not None:
        unet = _load_override(cls, model_cfg.unet, spec.denoiser, unet_dtype)
    elif spec.denoiser != "unet" and _is_local(model_cfg.base) and not (Path(model_cfg.base) / spec.denoiser).is_dir():
        raise ValueError(
            f"{model_cfg.base}: model.family={model_cfg.family!r} expects a {spec.denoiser}/ folder "
            f"({cls.__name__}); set model.family to match the checkpoint"
        )
    else:
        unet = cls.from_pretrained(model_cfg.base, subfolder=spec.denoiser, torch_dtype=unet_dtype, **weights)
    if model_cfg.unet_lora is not None:
        from .saving import load_lora_and_merge

        load_lora_and_merge(unet, model_cfg.unet_lora)
    _check_unet_family(unet, model_cfg.family, spec)
    return unet


def _load_vae(model_cfg: ModelConfig, spec: FamilySpec, dtype: torch.dtype) -> Any:
    from diffusers import AutoencoderKL

    base = model_cfg.base
    vae_dtype = torch.float32 if model_cfg.upcast_vae else dtype
    if model_cfg.vae is not None:
        return _load_override(AutoencoderKL, model_cfg.vae, "vae", vae_dtype)
    if spec.requires_vae and _is_local(base) and not (Path(base) / "vae").is_dir():
        raise ValueError(
            f"{base}: model.family={model_cfg.family!r} needs a VAE but the folder has no vae/ "
            "(set model.vae, or model.family=toy for a pixel-space model)"
        )
    if spec.requires_vae or _has_subfolder(base, "vae", model_cfg.revision):
        weights: dict[str, Any] = {"revision": model_cfg.revision, "variant": model_cfg.variant}
        return AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=vae_dtype, **weights)
    return None


def _load_text_encoders(model_cfg: ModelConfig, spec: FamilySpec, dtype: torch.dtype) -> dict[str, Any]:
    """``text_encoder[_n]`` and ``tokenizer[_n]`` keyword arguments of :class:`Components`
    (SD3's T5 only with ``model.sd3_t5=load``)."""
    import transformers

    hub: dict[str, Any] = {"revision": model_cfg.revision}
    out: dict[str, Any] = {}
    for folder, encoder_cls, tokenizer_cls in text_encoder_classes(spec):
        if folder == "text_encoder_3" and model_cfg.sd3_t5 != "load":
            continue
        suffix = folder.removeprefix("text_encoder")
        out[folder] = getattr(transformers, encoder_cls).from_pretrained(
            model_cfg.base, subfolder=folder, dtype=dtype, variant=model_cfg.variant, **hub
        )
        out["tokenizer" + suffix] = getattr(transformers, tokenizer_cls).from_pretrained(
            model_cfg.base, subfolder="tokenizer" + suffix, **hub
        )
    return out


def _scheduler_class_name(base: str, revision: str | None) -> str | None:
    """The ``_class_name`` of the base's ``scheduler/`` config (read without loading weights)."""
    from diffusers import DDPMScheduler

    config = DDPMScheduler.load_config(base, subfolder="scheduler", revision=revision)
    return config.get("_class_name")


def load_training_scheduler(base: str, revision: str | None = None) -> Any:
    """The base's ``scheduler/`` as its training scheduler: FlowMatchEulerDiscreteScheduler for a
    flow-matching model (its config's ``_class_name``), else DDPMScheduler (SD's DDIM/PNDM configs
    carry the same training schedule)."""
    from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

    flow = _scheduler_class_name(base, revision) in FLOW_SCHEDULERS
    cls = FlowMatchEulerDiscreteScheduler if flow else DDPMScheduler
    return cls.from_pretrained(base, subfolder="scheduler", revision=revision)


def is_flow_model(model_cfg: ModelConfig) -> bool:
    """Whether the base's scheduler config names a flow-matching scheduler (False when it cannot be
    read: the loader says why later)."""
    try:
        return _scheduler_class_name(model_cfg.base, model_cfg.revision) in FLOW_SCHEDULERS
    except Exception:  # noqa: BLE001 - missing or unreachable: not this check's to report
        return False


def _check_unet_family(unet: Any, family: str, spec: FamilySpec) -> None:
    if not isinstance(unet, spec.denoiser_class):
        raise ValueError(
            f"model.family={family!r} expects a {spec.denoiser_class.__name__}, but the loaded network is a "
            f"{type(unet).__name__}; set model.family to match the checkpoint"
        )
    if spec.denoiser != "unet":
        return
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
