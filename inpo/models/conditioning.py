"""Text conditioning (SD1.5 / SDXL / SD3) and the one call site of the UNet (transformer) forward.

SD1.5: the text encoder's last hidden state. SD3: :mod:`inpo.models.sd3_text`. SDXL: the
penultimate hidden states of both encoders
concatenated along features, the pooled (projected) embedding of encoder 2, and micro-conditioning
``time_ids = (orig_h, orig_w, crop_top, crop_left, target_h, target_w)`` per image — either the
constant ``(R, R, 0, 0, R, R)`` at the training resolution R (the released code's choice) or the
real original size and crop offset of each image (``model.sdxl_micro_conditioning``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .loading import Components

Rows = torch.Tensor | Sequence[int] | slice
MICRO_CONDITIONING = ("constant", "real")


@dataclass(frozen=True)
class Conditioning:
    """Per-image text conditioning of a batch of B images.

    encoder_hidden_states: [B, L, D] (SDXL: D = D1 + D2; SD3: L = 77 CLIP + T5 tokens, D = T5's).
    text_embeds: [B, P] pooled embedding (SDXL: encoder 2's; SD3: both CLIPs'); None for SD1.5.
    time_ids: [B, 6] fp32 SDXL micro-conditioning; None for SD1.5 and SD3.
    A pooled embedding without time_ids is SD3's: the transformer takes it as ``pooled_projections``.
    """

    encoder_hidden_states: torch.Tensor
    text_embeds: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None

    def __post_init__(self) -> None:
        batch = self.encoder_hidden_states.shape[0]
        for name in ("text_embeds", "time_ids"):
            value = getattr(self, name)
            if value is not None and value.shape[0] != batch:
                raise ValueError(
                    f"Conditioning.{name} has {value.shape[0]} rows, encoder_hidden_states {batch}"
                )
        if self.time_ids is not None and self.text_embeds is None:
            raise ValueError("Conditioning: SDXL's time_ids need its pooled text_embeds")

    @property
    def kind(self) -> str:
        """"sd" (hidden states only), "sdxl" (pooled + time_ids) or "sd3" (pooled, no time_ids)."""
        if self.text_embeds is None:
            return "sd"
        return "sd3" if self.time_ids is None else "sdxl"

    def __len__(self) -> int:
        return int(self.encoder_hidden_states.shape[0])

    @property
    def added_cond_kwargs(self) -> dict[str, torch.Tensor] | None:
        """The UNet's ``added_cond_kwargs`` (SDXL) or None."""
        if self.text_embeds is None or self.time_ids is None:
            return None
        return {"text_embeds": self.text_embeds, "time_ids": self.time_ids}

    def _map(self, fn: Any) -> Conditioning:
        return Conditioning(
            fn(self.encoder_hidden_states),
            None if self.text_embeds is None else fn(self.text_embeds),
            None if self.time_ids is None else fn(self.time_ids),
        )

    def select(self, rows: Rows) -> Conditioning:
        """Rows ``rows`` (index tensor, list or slice) of every tensor."""
        if isinstance(rows, slice):
            return self._map(lambda x: x[rows])
        index = torch.as_tensor(rows, dtype=torch.long, device=self.encoder_hidden_states.device)
        return self._map(lambda x: x.index_select(0, index.to(x.device)))

    def repeat(self, n: int) -> Conditioning:
        """The whole batch n times in a row: rows [c_0..c_B-1, c_0..c_B-1, ...] → [n·B, ...]."""
        return self._map(lambda x: torch.cat([x] * n, dim=0))

    @staticmethod
    def cat(conds: Sequence[Conditioning]) -> Conditioning:
        """Concatenate batches along rows (all of one :attr:`kind`)."""
        if not conds:
            raise ValueError("Conditioning.cat needs at least one Conditioning")
        kinds = sorted({c.kind for c in conds})
        if len(kinds) != 1:
            raise ValueError(f"Conditioning.cat: cannot mix {' and '.join(kinds)} conditioning")
        first = conds[0]
        return Conditioning(
            torch.cat([c.encoder_hidden_states for c in conds]),
            None if first.text_embeds is None else torch.cat([c.text_embeds for c in conds]),  # type: ignore[misc]
            None if first.time_ids is None else torch.cat([c.time_ids for c in conds]),  # type: ignore[misc]
        )

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Conditioning:
        """Move every tensor to ``device``; cast the embeddings to ``dtype`` (time_ids stay fp32: sizes
        such as 1023 are not representable in bf16, and the UNet projects them in fp32 anyway)."""
        return Conditioning(
            self.encoder_hidden_states.to(device=device, dtype=dtype),
            None if self.text_embeds is None else self.text_embeds.to(device=device, dtype=dtype),
            None if self.time_ids is None else self.time_ids.to(device=device),
        )

    def with_time_ids(self, time_ids: torch.Tensor) -> Conditioning:
        """The same text conditioning with other micro-conditioning (e.g. cached text, fresh crops)."""
        if self.kind != "sdxl":
            raise ValueError("Conditioning.with_time_ids: only SDXL conditioning has time_ids")
        return replace(
            self, time_ids=time_ids.to(self.time_ids.device if self.time_ids is not None else None)
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """A flat dict for saving (safetensors); inverse of :meth:`from_tensors`."""
        out = {"encoder_hidden_states": self.encoder_hidden_states}
        if self.text_embeds is not None:
            out["text_embeds"] = self.text_embeds
        if self.time_ids is not None:
            out["time_ids"] = self.time_ids
        return out

    @staticmethod
    def from_tensors(tensors: dict[str, torch.Tensor]) -> Conditioning:
        return Conditioning(
            tensors["encoder_hidden_states"], tensors.get("text_embeds"), tensors.get("time_ids")
        )


def sdxl_time_ids(
    original_sizes: Sequence[tuple[int, int]],
    crop_top_lefts: Sequence[tuple[int, int]],
    target_size: tuple[int, int],
) -> torch.Tensor:
    """Micro-conditioning rows (orig_h, orig_w, crop_top, crop_left, target_h, target_w) → [B, 6] fp32."""
    if len(original_sizes) != len(crop_top_lefts):
        raise ValueError(
            f"sdxl_time_ids: {len(original_sizes)} original sizes but {len(crop_top_lefts)} crop offsets"
        )
    rows = [
        [*map(int, size), *map(int, crop), *target_size] for size, crop in zip(original_sizes, crop_top_lefts)
    ]
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), 6)


def constant_time_ids(batch: int, resolution: tuple[int, int]) -> torch.Tensor:
    """The released code's constant micro-conditioning (H, W, 0, 0, H, W) for every row → [B, 6] fp32."""
    h, w = resolution
    return sdxl_time_ids([(h, w)] * batch, [(0, 0)] * batch, (h, w))


def micro_conditioning_time_ids(
    mode: str,
    batch: int,
    target: tuple[int, int],
    original_sizes: Sequence[tuple[int, int]] | None = None,
    crop_top_lefts: Sequence[tuple[int, int]] | None = None,
) -> torch.Tensor:
    """SDXL time_ids [B, 6] fp32 for ``model.sdxl_micro_conditioning`` = ``mode``: ``"constant"``
    (H, W, 0, 0, H, W) at ``target``, or ``"real"`` from each image's ``original_sizes`` [(h, w)] and
    ``crop_top_lefts`` [(top, left)] (B of each; ignored by ``"constant"``)."""
    if mode == "constant":
        return constant_time_ids(batch, target)
    if mode == "real":
        if original_sizes is None or crop_top_lefts is None:
            raise ValueError(
                "model.sdxl_micro_conditioning=real needs each image's original size and crop offset "
                "(encode_prompts(original_sizes=..., crop_top_lefts=...))"
            )
        if len(original_sizes) != batch:
            raise ValueError(f"encode_prompts: {batch} captions but {len(original_sizes)} original sizes")
        return sdxl_time_ids(original_sizes, crop_top_lefts, target)
    raise ValueError(
        f"model.sdxl_micro_conditioning: unknown mode {mode!r}; "
        f"expected one of {', '.join(MICRO_CONDITIONING)}"
    )


def tokenize(tokenizer: Any, captions: list[str], device: torch.device) -> torch.Tensor:
    ids = tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return ids.to(device)


@torch.no_grad()
def encode_prompts(
    components: Components,
    captions: Sequence[str],
    *,
    resolution: int | tuple[int, int] | None = None,
    original_sizes: Sequence[tuple[int, int]] | None = None,
    crop_top_lefts: Sequence[tuple[int, int]] | None = None,
) -> Conditioning:
    """Encode B captions ("" allowed: caption dropout) → Conditioning with B rows (no grad).

    SDXL only: micro-conditioning follows ``components.micro_conditioning``
    (``model.sdxl_micro_conditioning``); ``resolution`` is the training image side (int or (H, W);
    default the UNet's native size); ``"real"`` needs ``original_sizes`` [(h, w)] and
    ``crop_top_lefts`` [(top, left)], one per caption (ignored by ``"constant"``).
    """
    captions = list(captions)
    if not all(isinstance(c, str) for c in captions):
        raise TypeError("encode_prompts: captions must be strings")
    device = components.text_encoder.device
    if components.family == "sd3":
        from .sd3_text import encode_sd3

        return encode_sd3(components, captions)
    if not components.is_sdxl:
        ids = tokenize(components.tokenizer, captions, device)
        return Conditioning(components.text_encoder(ids).last_hidden_state)

    assert components.text_encoder_2 is not None and components.tokenizer_2 is not None
    out_1 = components.text_encoder(
        tokenize(components.tokenizer, captions, device), output_hidden_states=True
    )
    out_2 = components.text_encoder_2(
        tokenize(components.tokenizer_2, captions, components.text_encoder_2.device),
        output_hidden_states=True,
    )
    hidden = torch.cat([out_1.hidden_states[-2], out_2.hidden_states[-2].to(device)], dim=-1)
    pooled = out_2.text_embeds.to(device)

    res = resolution if resolution is not None else components.native_resolution
    target = (res, res) if isinstance(res, int) else (int(res[0]), int(res[1]))
    time_ids = micro_conditioning_time_ids(
        components.micro_conditioning, len(captions), target, original_sizes, crop_top_lefts
    )
    return Conditioning(hidden, pooled, time_ids.to(device))


def unet_eps(
    unet: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor | int | float, cond: Conditioning
) -> torch.Tensor:
    """The network's raw output (eps, v or velocity: its parametrisation), [B, C, H, W] → [B, C, H, W]
    in the network's dtype.

    ``t`` is a scalar or [B] (per-image network timesteps). The conditioning is moved to ``x_t``'s
    device and dtype; SDXL's pooled embedding and time_ids go in as ``added_cond_kwargs``; SD3's
    transformer takes its pooled embedding as ``pooled_projections``.
    """
    batch = x_t.shape[0]
    if len(cond) != batch:
        raise ValueError(f"unet_eps: x_t has {batch} rows but the conditioning has {len(cond)}")
    timesteps = torch.as_tensor(t, device=x_t.device)
    if timesteps.ndim == 0:
        timesteps = timesteps.expand(batch)
    if timesteps.shape != (batch,):
        raise ValueError(f"unet_eps: t must be a scalar or [{batch}], got shape {tuple(timesteps.shape)}")
    c = cond.to(device=x_t.device, dtype=x_t.dtype)
    if c.kind == "sd3":
        return unet(
            x_t,
            encoder_hidden_states=c.encoder_hidden_states,
            pooled_projections=c.text_embeds,
            timestep=timesteps,
            return_dict=False,
        )[0]
    return unet(
        x_t,
        timesteps,
        encoder_hidden_states=c.encoder_hidden_states,
        added_cond_kwargs=c.added_cond_kwargs,
        return_dict=False,
    )[0]
