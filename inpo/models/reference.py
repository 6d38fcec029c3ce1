"""The frozen reference model eps_ref (spec §3) and LoRA adapters.

Two strategies, one interface (:class:`ReferenceModel`):
- full fine-tuning: a frozen deep copy of the starting policy UNet;
- LoRA: the policy UNet carries a peft LoRA adapter (B initialised to zero, so policy = reference at
  step 0) and the reference is the same module run with the adapter switched off — no second UNet.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

import torch

from .conditioning import Conditioning, unet_eps

if TYPE_CHECKING:
    from inpo.config.sections import LoraConfig, ModelConfig

ReferenceStrategy = Literal["frozen_copy", "adapter_off"]


def has_lora_adapter(unet: torch.nn.Module) -> bool:
    return bool(getattr(unet, "peft_config", None))


def add_lora_adapter(unet: torch.nn.Module, lora_cfg: LoraConfig, adapter_name: str = "default") -> None:
    """Freeze ``unet`` and inject a trainable LoRA adapter (rank, alpha, dropout, target modules).

    Only the adapter's ``lora_A``/``lora_B`` weights require grad afterwards; B starts at zero, so
    the adapted UNet computes exactly what the base does until the first update.
    """
    from peft import LoraConfig as PeftLoraConfig

    if has_lora_adapter(unet):
        raise ValueError("add_lora_adapter: the UNet already has a LoRA adapter (merge_lora it first)")
    unet.requires_grad_(False)
    config = PeftLoraConfig(
        r=lora_cfg.rank,
        lora_alpha=lora_cfg.alpha,  # type: ignore[arg-type]  # peft annotates int; scaling = alpha / r
        lora_dropout=lora_cfg.dropout,
        target_modules=list(lora_cfg.target_modules),
        init_lora_weights=True,
    )
    try:
        unet.add_adapter(config, adapter_name=adapter_name)  # type: ignore[operator]
    except ValueError as err:  # peft: "Target modules {...} not found in the base model"
        raise ValueError(f"model.lora.target_modules={list(lora_cfg.target_modules)}: {err}") from err
    for name, param in unet.named_parameters():
        if "lora_" in name:
            param.requires_grad_(True)


def lora_parameters(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The adapter's parameters (what the optimizer trains in LoRA mode)."""
    return [p for n, p in unet.named_parameters() if "lora_" in n]


@contextmanager
def adapter_disabled(unet: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run ``unet`` as its base model inside the block; restores the adapter and every
    ``requires_grad`` flag afterwards (peft toggles them), so graphs built before stay valid."""
    if not has_lora_adapter(unet):
        raise ValueError("adapter_disabled: the UNet has no LoRA adapter")
    flags = [(p, p.requires_grad) for p in lora_parameters(unet)]
    unet.disable_adapters()  # type: ignore[operator]
    try:
        yield unet
    finally:
        unet.enable_adapters()  # type: ignore[operator]
        for param, flag in flags:
            param.requires_grad_(flag)


class ReferenceModel:
    """eps_ref(x_t, t, c) under no_grad, whatever the strategy; callable like an eps function.

    ``dtype``: the dtype the reference computes in (a frozen copy is stored in it); inputs are cast
    to it and the result back to ``x_t``'s dtype.
    """

    def __init__(self, unet: torch.nn.Module, strategy: ReferenceStrategy) -> None:
        if strategy not in ("frozen_copy", "adapter_off"):
            raise ValueError(f"unknown reference strategy {strategy!r}; expected frozen_copy or adapter_off")
        self.unet = unet
        self.strategy: ReferenceStrategy = strategy

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @torch.no_grad()
    def eps(self, x_t: torch.Tensor, t: torch.Tensor | int | float, cond: Conditioning) -> torch.Tensor:
        """[B, C, H, W] → [B, C, H, W] in x_t's dtype; never records a graph."""
        x = x_t.to(self.dtype)
        if self.strategy == "adapter_off":
            with adapter_disabled(self.unet):
                out = unet_eps(self.unet, x, t, cond)
        else:
            out = unet_eps(self.unet, x, t, cond)
        return out.to(x_t.dtype)

    __call__ = eps


def build_reference(
    policy_unet: torch.nn.Module, model_cfg: ModelConfig, dtype: torch.dtype | None = None
) -> ReferenceModel:
    """The reference for ``policy_unet`` (call before the first update).

    ``model.lora.enabled``: adds the LoRA adapter to ``policy_unet`` in place (unless it has one) and
    freezes its base weights; the reference is the same module with the adapter off.
    Otherwise: a frozen deep copy (``requires_grad`` False, eval mode), cast to ``dtype`` if given
    (e.g. the mixed-precision dtype: the reference needs no fp32 master weights).
    """
    if model_cfg.lora.enabled:
        if not has_lora_adapter(policy_unet):
            add_lora_adapter(policy_unet, model_cfg.lora)
        return ReferenceModel(policy_unet, "adapter_off")
    if has_lora_adapter(policy_unet):
        raise ValueError(
            "build_reference: full fine-tuning (model.lora.enabled=false) but the UNet carries a LoRA "
            "adapter; merge_lora(unet) first"
        )
    frozen = copy.deepcopy(policy_unet)
    frozen.requires_grad_(False)
    frozen.eval()
    if dtype is not None:
        frozen.to(dtype)
    return ReferenceModel(frozen, "frozen_copy")
