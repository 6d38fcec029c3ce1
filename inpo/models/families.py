"""The model-family registry: what a family's folder holds and how its parts are called.

=======  ===========================  ===============================================  =================
family   denoiser (subfolder)         text encoders (subfolders)                       conditioning
=======  ===========================  ===============================================  =================
sd15     UNet2DConditionModel (unet)  CLIP-L (text_encoder)                            last hidden state
sd2      UNet, linear projections     OpenCLIP-H in CLIPTextModel format               last hidden state
sdxl     UNet, ``text_time``          CLIP-L, CLIP-bigG with projection (…_2)          penultimate ‖, pooled, time_ids
sd3      SD3Transformer2DModel        CLIP-L, CLIP-bigG with projections, T5 (…_3)     penultimate ‖ padded ⊕ T5, pooled
         (transformer)
toy      UNet, pixel space (no vae/)  a tiny CLIP text encoder                         last hidden state
=======  ===========================  ===============================================  =================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DENOISER_CLASSES = {"unet": "UNet2DConditionModel", "transformer": "SD3Transformer2DModel"}


@dataclass(frozen=True)
class FamilySpec:
    """What a model family's folder holds and how its text conditioning is formed."""

    text_encoders: int  # 1: SD1.5 layout; 2: SDXL (second encoder → pooled); 3: SD3 (two CLIPs + T5)
    requires_vae: bool  # False: a folder without vae/ is a pixel-space model (toy world)
    addition_embed_type: str | None  # what a UNet's config must say ("text_time" for SDXL)
    linear_projection: bool | None = None  # the UNet's use_linear_projection (None: either)
    denoiser: str = "unet"  # the base's subfolder of the network that is trained (DENOISER_CLASSES)

    @property
    def denoiser_class(self) -> Any:
        """The diffusers class of the trained network (UNet2DConditionModel / SD3Transformer2DModel)."""
        import diffusers

        return getattr(diffusers, DENOISER_CLASSES[self.denoiser])

    @property
    def micro_conditioning(self) -> bool:
        """Whether the denoiser takes SDXL's per-image time_ids."""
        return self.addition_embed_type == "text_time"


FAMILIES: dict[str, FamilySpec] = {
    "sd15": FamilySpec(text_encoders=1, requires_vae=True, addition_embed_type=None, linear_projection=False),
    # SD2.x: SD1.5's layout and conditioning with the OpenCLIP ViT-H text encoder (CLIPTextModel
    # format, penultimate layer); 512-base predicts epsilon, 768-v v_prediction (the scheduler says)
    "sd2": FamilySpec(text_encoders=1, requires_vae=True, addition_embed_type=None, linear_projection=True),
    "sdxl": FamilySpec(text_encoders=2, requires_vae=True, addition_embed_type="text_time"),
    # SD3 / SD3.5: an MMDiT transformer on 16-channel latents, flow matching (the scheduler says)
    "sd3": FamilySpec(text_encoders=3, requires_vae=True, addition_embed_type=None, denoiser="transformer"),
    "toy": FamilySpec(text_encoders=1, requires_vae=False, addition_embed_type=None),
}


def family_spec(family: str) -> FamilySpec:
    """The registry entry for ``family``; an unknown name lists the valid ones."""
    if family not in FAMILIES:
        raise ValueError(f"model.family: unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[family]


def text_encoder_classes(spec: FamilySpec) -> list[tuple[str, str, str]]:
    """(encoder subfolder, transformers class, tokenizer class) for each of the family's encoders.

    SD3's T5 comes last; whether it is loaded is ``model.sd3_t5``'s business (the loader's)."""
    if spec.text_encoders == 1:
        return [("text_encoder", "CLIPTextModel", "CLIPTokenizer")]
    if spec.text_encoders == 2:
        return [
            ("text_encoder", "CLIPTextModel", "CLIPTokenizer"),
            ("text_encoder_2", "CLIPTextModelWithProjection", "CLIPTokenizer"),
        ]
    return [
        ("text_encoder", "CLIPTextModelWithProjection", "CLIPTokenizer"),
        ("text_encoder_2", "CLIPTextModelWithProjection", "CLIPTokenizer"),
        ("text_encoder_3", "T5EncoderModel", "T5TokenizerFast"),
    ]
