"""UNet weights on disk: full UNet and LoRA adapter round-trips, LoRA merging, loading overrides."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from inpo.config.sections import LoraConfig, ModelConfig
from inpo.models import (
    Components,
    add_lora_adapter,
    build_reference,
    encode_prompts,
    has_lora_adapter,
    load_components,
    load_unet_weights,
    lora_parameters,
    merge_lora,
    save_unet_weights,
    unet_eps,
)
from inpo.testing import write_tiny_sd15

LORA = LoraConfig(
    enabled=True, rank=4, alpha=2.0
)  # alpha ≠ rank: a loader that drops alpha gets scale 1, not 0.5


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> ModelConfig:
    return ModelConfig(
        family="sd15", pretrained=str(write_tiny_sd15(tmp_path_factory.mktemp("sd15") / "base"))
    )


def _eps(c: Components, unet: torch.nn.Module | None = None) -> torch.Tensor:
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return unet_eps(unet or c.unet, x, torch.tensor([30, 600]), encode_prompts(c, ["a red cube", ""]))


def _perturb(params: list[torch.nn.Parameter], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(0.1 * torch.randn(p.shape, generator=gen))


def test_full_unet_round_trip(cfg: ModelConfig, tmp_path: Path) -> None:
    from diffusers import UNet2DConditionModel

    c = load_components(cfg)
    _perturb(list(c.unet.parameters()), seed=1)
    trained = _eps(c)
    out = save_unet_weights(c.unet, tmp_path / "unet", lora=False)
    assert (out / "diffusion_pytorch_model.safetensors").is_file() and (out / "config.json").is_file()
    assert torch.equal(_eps(c, UNet2DConditionModel.from_pretrained(out)), trained)
    swapped = load_components(replace(cfg, unet=str(out)))  # model.unet: the SFT-UNet path
    assert torch.equal(_eps(swapped), trained)
    fresh = load_components(cfg)  # resume into an existing module
    load_unet_weights(fresh.unet, out, lora=False)
    assert torch.equal(_eps(fresh), trained)
    save_unet_weights(c.unet, tmp_path / "unet", lora=False)  # overwriting leaves no temporary folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet"]


def test_lora_adapter_round_trip_into_a_diffusers_pipeline(cfg: ModelConfig, tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    lora_cfg = replace(cfg, lora=LORA)
    c = load_components(lora_cfg)
    build_reference(c.unet, lora_cfg)
    _perturb(lora_parameters(c.unet), seed=2)
    trained = _eps(c)
    out = save_unet_weights(c.unet, tmp_path / "lora", lora=True)
    assert [p.name for p in out.iterdir()] == ["pytorch_lora_weights.safetensors"]

    pipe = StableDiffusionPipeline.from_pretrained(cfg.pretrained)
    pipe.load_lora_weights(out)
    assert torch.allclose(_eps(c, pipe.unet), trained, atol=1e-6)

    fresh = load_components(lora_cfg)
    build_reference(fresh.unet, lora_cfg)
    assert not torch.allclose(_eps(fresh), trained)
    load_unet_weights(fresh.unet, out, lora=True)
    assert torch.equal(_eps(fresh), trained)


def test_merge_lora_and_the_unet_lora_setting(cfg: ModelConfig, tmp_path: Path) -> None:
    c = load_components(cfg)
    add_lora_adapter(c.unet, LORA)
    _perturb(lora_parameters(c.unet), seed=3)
    adapted = _eps(c)
    lora_dir = save_unet_weights(c.unet, tmp_path / "sft-lora", lora=True)
    with pytest.raises(ValueError, match="merge_lora"):
        save_unet_weights(c.unet, tmp_path / "full", lora=False)

    merged = merge_lora(c.unet)
    assert not has_lora_adapter(merged) and not lora_parameters(merged)
    assert all(p.requires_grad for p in merged.parameters())
    assert torch.allclose(_eps(c), adapted, atol=1e-5)  # W + (alpha/r)·B·A folded into W: fp32 rounding only
    # model.unet_lora: an SFT LoRA merged at load, ready to be policy and reference of preference training
    sft = load_components(replace(cfg, unet_lora=str(lora_dir)))
    assert not has_lora_adapter(sft.unet) and torch.allclose(_eps(sft), adapted, atol=1e-5)


def test_unknown_lora_target_modules_are_named(cfg: ModelConfig) -> None:
    c = load_components(cfg)
    with pytest.raises(ValueError, match="model.lora.target_modules"):
        add_lora_adapter(c.unet, replace(LORA, target_modules=["no_such_layer"]))


def test_lora_exports_to_the_kohya_layout_that_diffusers_reads_back(cfg: ModelConfig, tmp_path: Path) -> None:
    """The kohya/A1111/ComfyUI file holds the same adapter: loaded by diffusers' own kohya converter
    it gives the trained prediction (alpha 2 ≠ rank 4, so a wrong alpha would show)."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    from inpo.models.lora_export import export_kohya

    lora_cfg = replace(cfg, lora=LORA)
    c = load_components(lora_cfg)
    build_reference(c.unet, lora_cfg)
    _perturb(lora_parameters(c.unet), seed=3)
    trained = _eps(c)
    kohya = export_kohya(save_unet_weights(c.unet, tmp_path / "lora", lora=True))
    state = load_file(kohya)
    assert all(k.startswith("lora_unet_") for k in state)
    downs = [k for k in state if k.endswith(".lora_down.weight")]
    assert downs and len(state) == 3 * len(downs)  # down, up, alpha per module
    assert all(float(state[k.replace(".lora_down.weight", ".alpha")]) == LORA.alpha for k in downs)
    pipe = StableDiffusionPipeline.from_pretrained(cfg.pretrained)
    pipe.load_lora_weights(str(kohya.parent), weight_name=kohya.name)
    assert torch.allclose(_eps(c, pipe.unet), trained, atol=1e-5)
