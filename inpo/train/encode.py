"""Pairs → a micro-batch in model space, the one step every run takes (cached or not).

Keys. An image is (pair index, side ``w``/``l``, flipped, caption dropped): its VAE latent depends on
the first three, an inversion walk on all four (the caption conditions the inversion). SDXL's
micro-conditioning (time_ids) is built per image from the image's own size and crop
(:func:`pair_conditioning`), so winner and loser rows each get theirs. Each pair's flips and caption
dropout come from :meth:`inpo.data.PairDataset.pair_draws`, so the same key means the same tensors in
every epoch, run and method; random crops would not (their offsets are not in the key).

:class:`BatchEncoder` encodes straight from the images; :class:`inpo.train.embedding_cache.
CachedBatchEncoder` wraps it with the on-disk latent and text-embedding cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

SIDES = ("w", "l")


@dataclass(frozen=True)
class ImageKey:
    """One training image: pair index, side ("w" winner / "l" loser), horizontally flipped, caption dropped."""

    pair_index: int
    side: str
    flip: bool
    caption_dropped: bool

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"ImageKey.side must be one of {SIDES}, got {self.side!r}")

    @property
    def latent_name(self) -> str:
        return f"latent/{self.pair_index}/{self.side}/{int(self.flip)}"

    @property
    def geometry_name(self) -> str:
        """[4] int64 (original_h, original_w, crop_top, crop_left): SDXL's real micro-conditioning."""
        return f"geometry/{self.pair_index}/{self.side}/{int(self.flip)}"

    @property
    def inversion_name(self) -> str:
        return f"inv/{self.pair_index}/{self.side}/{int(self.flip)}/{int(self.caption_dropped)}"


def pair_image_keys(
    pair_index: Sequence[int], flip_w: Sequence[bool], flip_l: Sequence[bool], caption_dropped: Sequence[bool]
) -> list[ImageKey]:
    """The 2B keys of a micro-batch in the objectives' row order: winners 0..B-1, then losers."""
    winners = [
        ImageKey(int(i), "w", bool(f), bool(d)) for i, f, d in zip(pair_index, flip_w, caption_dropped)
    ]
    losers = [ImageKey(int(i), "l", bool(f), bool(d)) for i, f, d in zip(pair_index, flip_l, caption_dropped)]
    return winners + losers


@dataclass
class EncodedBatch:
    """A micro-batch in model space: x0_w, x0_l [B, C, h, w] fp32; cond2 (2B rows, winners then losers:
    the pair's caption or "", and for SDXL each image's own micro-conditioning); keys: the 2B image keys
    (winners, then losers); geometry [2B, 4] int64 (original_h, original_w, crop_top, crop_left);
    fields: the per-pair payload a method asked for (name → [B])."""

    x0_w: torch.Tensor
    x0_l: torch.Tensor
    cond2: Any
    keys: list[ImageKey]
    geometry: torch.Tensor
    fields: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def cond(self) -> Any:
        """The winners' rows of ``cond2`` (B rows)."""
        return self.cond2.select(slice(0, self.x0_w.shape[0]))


def pair_conditioning(components: Any, cond: Any, resolution: int, geometry: torch.Tensor) -> Any:
    """Text conditioning of B pairs → the 2B rows the objectives use (winners, then losers).

    cond: B rows; geometry: [2B, 4] int64 rows (original_h, original_w, crop_top, crop_left), winners
    then losers. SD1.5 and toy: the text twice. SDXL: each image's own time_ids as
    ``model.sdxl_micro_conditioning`` says (constant: (R, R, 0, 0, R, R) for every row; real: the
    image's size and crop), replacing whatever time_ids ``cond`` carries."""
    from ..models.conditioning import micro_conditioning_time_ids

    pair = cond.repeat(2)
    if cond.time_ids is None:
        return pair
    rows = geometry.tolist()
    if len(rows) != len(pair):
        raise ValueError(f"pair_conditioning: {len(pair)} rows of text but {len(rows)} image geometries")
    time_ids = micro_conditioning_time_ids(
        components.micro_conditioning,
        len(rows),
        (resolution, resolution),
        [(r[0], r[1]) for r in rows],
        [(r[2], r[3]) for r in rows],
    )
    return pair.with_time_ids(time_ids)


class BatchEncoder:
    """Encode the pairs of a :class:`inpo.data.PairDataset` (at its epoch) with the VAE and text encoders."""

    def __init__(self, components: Any, resolution: int, pair_fields: Sequence[str] = ()) -> None:
        self.components = components
        self.resolution = resolution
        self.pair_fields = tuple(pair_fields)

    def encode(self, dataset: Any, indices: Sequence[int], device: torch.device | str) -> EncodedBatch:
        from ..data import collate_pairs
        from ..models import encode_images, encode_prompts

        batch = collate_pairs(dataset.__getitems__(list(indices)))
        keys = pair_image_keys(
            indices, batch.flip_w.tolist(), batch.flip_l.tolist(), batch.caption_dropped.tolist()
        )
        geometry = torch.cat(
            [
                torch.cat([batch.original_size_w, batch.crop_top_left_w], dim=1),
                torch.cat([batch.original_size_l, batch.crop_top_left_l], dim=1),
            ]
        )
        x0_w = encode_images(self.components, batch.image_w.to(device))
        x0_l = encode_images(self.components, batch.image_l.to(device))
        cond = encode_prompts(
            self.components,
            batch.captions,
            resolution=self.resolution,
            original_sizes=[tuple(r) for r in batch.original_size_w.tolist()],
            crop_top_lefts=[tuple(r) for r in batch.crop_top_left_w.tolist()],
        )
        cond2 = pair_conditioning(self.components, cond, self.resolution, geometry)
        return EncodedBatch(x0_w, x0_l, cond2, keys, geometry, self.fields(dataset, indices, device))

    def fields(
        self, dataset: Any, indices: Sequence[int], device: torch.device | str
    ) -> dict[str, torch.Tensor]:
        if not self.pair_fields:
            return {}
        return {k: v.to(device) for k, v in dataset.pair_fields(indices, self.pair_fields).items()}

    def flush(self) -> None:
        """Nothing to write (see the cached encoder)."""
