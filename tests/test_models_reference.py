"""Reference model strategies: a frozen copy, or the policy's LoRA adapter switched off."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from inpo.config.sections import LoraConfig, ModelConfig
from inpo.models import (
    Components,
    ReferenceModel,
    adapter_disabled,
    build_reference,
    encode_prompts,
    load_components,
    lora_parameters,
    merge_lora,
    unet_eps,
)
from inpo.testing import write_tiny_sd15, write_tiny_sdxl

LORA = LoraConfig(enabled=True, rank=4, alpha=2.0)


@pytest.fixture(scope="module")
def sd15_cfg(tmp_path_factory: pytest.TempPathFactory) -> ModelConfig:
    return ModelConfig(
        family="sd15", pretrained=str(write_tiny_sd15(tmp_path_factory.mktemp("sd15") / "base"))
    )


@pytest.fixture(scope="module")
def sdxl_cfg(tmp_path_factory: pytest.TempPathFactory) -> ModelConfig:
    return ModelConfig(
        family="sdxl", pretrained=str(write_tiny_sdxl(tmp_path_factory.mktemp("sdxl") / "base"))
    )


def _inputs(c: Components, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, object]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    return x, torch.tensor([50, 700]), encode_prompts(c, ["a red cube", ""])


def _perturb(params: list[torch.nn.Parameter], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(0.1 * torch.randn(p.shape, generator=gen))


def test_frozen_copy_is_independent_of_policy_updates(sd15_cfg: ModelConfig) -> None:
    c = load_components(sd15_cfg)
    x, t, cond = _inputs(c)
    ref = build_reference(c.unet, sd15_cfg)
    assert ref.strategy == "frozen_copy" and ref.unet is not c.unet and not ref.unet.training
    assert all(not p.requires_grad for p in ref.unet.parameters())
    assert all(p.requires_grad for p in c.unet.parameters())
    before = ref.eps(x, t, cond)
    with torch.no_grad():
        assert torch.equal(before, unet_eps(c.unet, x, t, cond))  # starts as the policy
    _perturb(list(c.unet.parameters()), seed=1)  # "training" the policy
    after = ref.eps(x, t, cond)
    assert torch.equal(after, before) and not after.requires_grad
    with torch.no_grad():
        assert not torch.allclose(unet_eps(c.unet, x, t, cond), before)


def test_frozen_copy_in_half_precision_returns_the_input_dtype(sd15_cfg: ModelConfig) -> None:
    c = load_components(sd15_cfg)
    x, t, cond = _inputs(c)
    ref = build_reference(c.unet, sd15_cfg, dtype=torch.bfloat16)
    assert ref.dtype == torch.bfloat16 and c.unet.dtype == torch.float32
    eps = ref.eps(x, t, cond)
    with torch.no_grad():
        full = unet_eps(c.unet, x, t, cond)
    # bf16 keeps 8 mantissa bits: a relative error of a few 2^-8 ≈ 0.4 % per value, far below the signal
    assert eps.dtype == torch.float32 and torch.allclose(eps, full, atol=0.05 * full.abs().max().item())


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_lora_reference_is_the_base_with_the_adapter_off(family: str, request: pytest.FixtureRequest) -> None:
    cfg: ModelConfig = replace(request.getfixturevalue(f"{family}_cfg"), lora=LORA)
    c = load_components(cfg)
    x, t, cond = _inputs(c)
    with torch.no_grad():
        base = unet_eps(c.unet, x, t, cond)
    ref = build_reference(c.unet, cfg)
    assert ref.strategy == "adapter_off" and ref.unet is c.unet
    trainable = [n for n, p in c.unet.named_parameters() if p.requires_grad]
    # to_q, to_k, to_v, to_out.0 of every attention: lora_A and lora_B each
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} >= {"to_q", "to_k", "to_v"}
    with torch.no_grad():
        assert torch.equal(unet_eps(c.unet, x, t, cond), base)  # lora_B = 0 at the start: policy = base
    _perturb(lora_parameters(c.unet), seed=2)
    with torch.no_grad():
        policy = unet_eps(c.unet, x, t, cond)
    assert not torch.allclose(policy, base)
    assert torch.equal(ref.eps(x, t, cond), base)  # bit-identical to the base, adapter perturbed or not
    with torch.no_grad():
        assert torch.equal(unet_eps(c.unet, x, t, cond), policy)  # adapter back on afterwards


def test_reference_call_between_forward_and_backward_keeps_lora_grads(sd15_cfg: ModelConfig) -> None:
    cfg = replace(sd15_cfg, lora=LORA)
    c = load_components(cfg)
    x, t, cond = _inputs(c)
    ref = build_reference(c.unet, cfg)
    _perturb(lora_parameters(c.unet), seed=3)

    def grads(call_reference: bool) -> list[torch.Tensor]:
        c.unet.zero_grad(set_to_none=True)
        loss = unet_eps(c.unet, x, t, cond).square().mean()
        if call_reference:
            ref.eps(x, t, cond)  # peft flips requires_grad off and on inside
        loss.backward()
        return [p.grad.clone() for p in lora_parameters(c.unet)]  # type: ignore[union-attr]

    plain, interleaved = grads(False), grads(True)
    assert all(g.abs().sum() > 0 for g in plain)
    assert all(torch.equal(a, b) for a, b in zip(plain, interleaved))
    assert all(p.requires_grad for p in lora_parameters(c.unet))


def test_full_fine_tuning_refuses_an_unmerged_adapter(sd15_cfg: ModelConfig) -> None:
    c = load_components(sd15_cfg)
    build_reference(c.unet, replace(sd15_cfg, lora=LORA))
    with pytest.raises(ValueError, match="merge_lora"):
        build_reference(c.unet, sd15_cfg)
    merge_lora(c.unet)
    assert isinstance(build_reference(c.unet, sd15_cfg), ReferenceModel)
    with pytest.raises(ValueError, match="no LoRA adapter"):
        with adapter_disabled(c.unet):
            pass


def test_lora_grads_flow_through_gradient_checkpointing(sd15_cfg: ModelConfig) -> None:
    cfg = replace(sd15_cfg, lora=LORA)
    c = load_components(cfg)
    x, t, cond = _inputs(c)
    build_reference(c.unet, cfg)
    _perturb(lora_parameters(c.unet), seed=4)
    c.unet.train()

    def grads() -> list[torch.Tensor]:
        c.unet.zero_grad(set_to_none=True)
        unet_eps(c.unet, x, t, cond).square().mean().backward()
        return [p.grad.clone() for p in lora_parameters(c.unet)]  # type: ignore[union-attr]

    plain = grads()
    c.unet.enable_gradient_checkpointing()
    # frozen base + checkpointing: a reentrant checkpoint would silently drop every adapter grad
    checkpointed = grads()
    assert all(g.abs().sum() > 0 for g in checkpointed)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, checkpointed))
