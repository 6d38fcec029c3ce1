"""Pairs for training: the pair index → transformed winner/loser tensors → typed batches.

    dataset = PairDataset(outputs / "prepare/pairs.parquet", cfg.data, seed=cfg.train.seed)
    dataset.set_epoch(epoch)
    batch = collate_pairs(dataset.__getitems__(pair_indices))   # or a DataLoader(collate_fn=collate_pairs)

Images are read from the source shards named by the index (never copied); a micro-batch's rows are
read shard by shard and row group by row group. Each pair's draws (caption dropout, flips, crops)
come from ``pair_generator(seed, epoch, pair_index, "data")``: the same pair in the same epoch gets
the same images whatever batch it lands in. With DataLoader workers, call ``set_epoch`` before the
epoch's iterator is created (workers copy the dataset then).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..config.sections import DataConfig
from ..rng import pair_generator
from .images import CorruptImageError, decode_rgb, image_bytes, image_hash
from .index import PairIndex, read_pair_index
from .sources import IMAGE_COLUMNS, PairDataError, Shard, ShardCache, resolve_source
from .transforms import PairDraws, draw_pair, transform_image_with_geometry


def _winner_label(index: PairIndex, rows: list[int]) -> torch.Tensor:
    """The source's preference for the pair's winner, in [0.5, 1] (1: a hard label)."""
    label_0 = torch.from_numpy(index.label_0[rows])
    winner = torch.from_numpy(index.winner[rows].astype("int64"))
    return torch.where(winner == 0, label_0, 1 - label_0)


def _winner_soft_label(index: PairIndex, rows: list[int]) -> torch.Tensor:
    """The winner's smoothed preference p in [0, 1] (SmPO), from the index's ``soft_label_0``."""
    if index.soft_label_0 is None:
        raise PairDataError(
            f"{index.path}: the pairs carry no smoothed labels (soft_label_0); write them with "
            "`inpo relabel`, then `inpo prepare data.source=<its folder>`"
        )
    soft_0 = torch.from_numpy(index.soft_label_0[rows])
    winner = torch.from_numpy(index.winner[rows].astype("int64"))
    return torch.where(winner == 0, soft_0, 1 - soft_0)


PAIR_FIELDS = {"label_w": _winner_label, "soft_label_w": _winner_soft_label}  # what a method may ask for


@dataclass(frozen=True)
class PairExample:
    """One transformed pair. ``caption`` is "" when dropped (the same "" conditions both sides).

    ``original_size_*`` (height, width) before resizing and ``crop_top_left_*`` (top, left) in the
    resized image as the output shows it (after a flip: in the flipped frame, as diffusers' SDXL
    script): SDXL's real micro-conditioning (:class:`.transforms.ImageGeometry`)."""

    pair_index: int
    caption: str
    image_w: torch.Tensor  # [3, R, R] float32 in [-1, 1]
    image_l: torch.Tensor  # [3, R, R]
    flip_w: bool
    flip_l: bool
    caption_dropped: bool
    original_size_w: tuple[int, int]
    original_size_l: tuple[int, int]
    crop_top_left_w: tuple[int, int]
    crop_top_left_l: tuple[int, int]


@dataclass
class PairBatch:
    """A micro-batch of B pairs, winner and loser aligned by position."""

    pair_index: torch.Tensor  # [B] int64, global pair indices (keys of the per-pair random streams)
    captions: list[str]  # B captions after dropout
    image_w: torch.Tensor  # [B, 3, R, R] float32 in [-1, 1]
    image_l: torch.Tensor  # [B, 3, R, R]
    flip_w: torch.Tensor  # [B] bool
    flip_l: torch.Tensor  # [B] bool
    caption_dropped: torch.Tensor  # [B] bool
    original_size_w: torch.Tensor  # [B, 2] int64 (height, width) before resizing
    original_size_l: torch.Tensor  # [B, 2]
    crop_top_left_w: torch.Tensor  # [B, 2] int64 (top, left) of the crop
    crop_top_left_l: torch.Tensor  # [B, 2]

    def __len__(self) -> int:
        return len(self.captions)

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> PairBatch:
        """Move tensors to ``device``; ``dtype`` converts the images only."""
        return PairBatch(
            pair_index=self.pair_index.to(device),
            captions=list(self.captions),
            image_w=self.image_w.to(device, dtype=dtype),
            image_l=self.image_l.to(device, dtype=dtype),
            flip_w=self.flip_w.to(device),
            flip_l=self.flip_l.to(device),
            caption_dropped=self.caption_dropped.to(device),
            original_size_w=self.original_size_w.to(device),
            original_size_l=self.original_size_l.to(device),
            crop_top_left_w=self.crop_top_left_w.to(device),
            crop_top_left_l=self.crop_top_left_l.to(device),
        )

    def pin_memory(self) -> PairBatch:
        self.image_w, self.image_l = self.image_w.pin_memory(), self.image_l.pin_memory()
        return self


def collate_pairs(examples: Sequence[PairExample]) -> PairBatch:
    """Stack :class:`PairExample`s into a :class:`PairBatch` (order kept)."""
    if not examples:
        raise ValueError("collate_pairs: expected at least one pair")
    return PairBatch(
        pair_index=torch.tensor([e.pair_index for e in examples], dtype=torch.int64),
        captions=[e.caption for e in examples],
        image_w=torch.stack([e.image_w for e in examples]),
        image_l=torch.stack([e.image_l for e in examples]),
        flip_w=torch.tensor([e.flip_w for e in examples], dtype=torch.bool),
        flip_l=torch.tensor([e.flip_l for e in examples], dtype=torch.bool),
        caption_dropped=torch.tensor([e.caption_dropped for e in examples], dtype=torch.bool),
        original_size_w=torch.tensor([e.original_size_w for e in examples], dtype=torch.int64),
        original_size_l=torch.tensor([e.original_size_l for e in examples], dtype=torch.int64),
        crop_top_left_w=torch.tensor([e.crop_top_left_w for e in examples], dtype=torch.int64),
        crop_top_left_l=torch.tensor([e.crop_top_left_l for e in examples], dtype=torch.int64),
    )


class PairDataset(Dataset[PairExample]):
    """The pairs of a pair index, read from ``data_cfg.source`` and transformed per ``data_cfg``."""

    def __init__(self, index_path: str | Path, data_cfg: DataConfig, seed: int, epoch: int = 0) -> None:
        self.index: PairIndex = read_pair_index(index_path)
        self.index.require_source(data_cfg.source, data_cfg.split)
        self.cfg = data_cfg
        self.seed = seed
        self.epoch = epoch
        source = resolve_source(data_cfg.source, data_cfg.format, data_cfg.split, list_shards=False)
        if source.kind != self.index.kind:
            raise PairDataError(
                f"{self.index.path}: the index was built from a {self.index.kind} source ({self.index.source}); "
                f"data.source {data_cfg.source!r} is a {source.kind} source. Re-run `inpo prepare`."
            )
        self._shards = ShardCache(source)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draws the next reads use."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def pair_draws(self, pair_index: int) -> PairDraws:
        """The pair's random decisions (caption dropout, flips, crops) at the current epoch."""
        cfg = self.cfg
        gen = pair_generator(self.seed, self.epoch, int(pair_index), "data")
        return draw_pair(gen, cfg.caption_dropout, cfg.random_flip)

    def caption(self, pair_index: int, draws: PairDraws) -> str:
        """The caption the model sees for this pair under ``draws`` ("" when dropped)."""
        return "" if draws.caption_dropped else self.index.captions[int(pair_index)]

    def pair_fields(self, pair_indices: Sequence[int], names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Per-pair payload for a method (:data:`PAIR_FIELDS`): name → tensor [B]."""
        unknown = [n for n in names if n not in PAIR_FIELDS]
        if unknown:
            raise KeyError(
                f"pair field {unknown[0]!r} is not known; expected one of {', '.join(PAIR_FIELDS)}"
            )
        rows = [int(i) for i in pair_indices]
        return {n: PAIR_FIELDS[n](self.index, rows) for n in names}

    def __getitem__(self, pair_index: int) -> PairExample:
        return self.__getitems__([pair_index])[0]

    def __getitems__(self, pair_indices: Sequence[int]) -> list[PairExample]:
        """Several pairs at once (DataLoader uses this for a batch); rows read grouped by shard."""
        encoded = self.encoded_pairs(pair_indices)
        return [self._transform(int(i), win, lose) for i, (win, lose) in zip(pair_indices, encoded)]

    def encoded_pairs(self, pair_indices: Sequence[int]) -> list[tuple[bytes, bytes]]:
        """The stored (winner, loser) image bytes of each pair, in the order asked."""
        n = len(self.index)
        by_shard: dict[int, list[int]] = defaultdict(list)
        for position, i in enumerate(pair_indices):
            if not 0 <= int(i) < n:
                raise IndexError(f"pair index {i} out of range for {n} pairs ({self.index.path})")
            by_shard[int(self.index.shard_id[int(i)])].append(position)
        out: list[tuple[bytes, bytes]] = [(b"", b"")] * len(pair_indices)
        for shard_id, positions in by_shard.items():
            shard = self._open(shard_id)
            rows = [int(self.index.row[int(pair_indices[p])]) for p in positions]
            for p, record in zip(positions, shard.take(rows, IMAGE_COLUMNS)):
                pair = int(pair_indices[p])
                jpg_0, jpg_1 = (image_bytes(record[c]) or b"" for c in IMAGE_COLUMNS)
                self._check_hashes(pair, jpg_0, jpg_1)
                out[p] = (jpg_1, jpg_0) if self.index.winner[pair] == 1 else (jpg_0, jpg_1)
        return out

    def _check_hashes(self, pair: int, jpg_0: bytes, jpg_1: bytes) -> None:
        """The bytes read must be the ones ``inpo prepare`` indexed (a rewritten shard: misaligned pairs)."""
        for side, data in enumerate((jpg_0, jpg_1)):
            expected = self.index.hashes[side][pair] if self.index.hashes[side] else None
            if expected is not None and image_hash(data) != expected:
                shard = self.index.shards[self.index.shard_id[pair]]
                raise PairDataError(
                    f"{shard}: row {self.index.row[pair]} (pair {pair}): jpg_{side} is not the image "
                    f"{self.index.path} indexed (content hash differs): the shard changed since "
                    "`inpo prepare`; re-run it"
                )

    def _open(self, shard_id: int) -> Shard:
        name = self.index.shards[shard_id]
        try:
            shard = self._shards.get(name)
        except PairDataError as err:
            raise PairDataError(
                f"{err} (listed in {self.index.path}; did data.source change since prepare?)"
            ) from err
        expected = self.index.shard_rows[shard_id]
        if shard.num_rows != expected:
            raise PairDataError(
                f"{shard.path}: {shard.num_rows} rows, but {self.index.path} was built when it had {expected}; "
                "re-run `inpo prepare`"
            )
        return shard

    def _transform(self, pair_index: int, winner: bytes, loser: bytes) -> PairExample:
        cfg = self.cfg
        draws = self.pair_draws(pair_index)
        images, geometry = [], []
        for side, data, flip, crop_u in (
            ("winner", winner, draws.flip_w, draws.crop_w),
            ("loser", loser, draws.flip_l, draws.crop_l),
        ):
            try:
                img = decode_rgb(data)
            except CorruptImageError as err:
                shard = self.index.shards[self.index.shard_id[pair_index]]
                raise PairDataError(
                    f"{shard}: row {self.index.row[pair_index]} (pair {pair_index}, {side}): {err}; the index says "
                    "it decoded at prepare time: did the shard change?"
                ) from err
            pixels, geom = transform_image_with_geometry(
                img, cfg.resolution, cfg.crop, cfg.interpolation, flip, crop_u
            )
            images.append(pixels)
            geometry.append(geom)
        return PairExample(
            pair_index=pair_index,
            caption=self.caption(pair_index, draws),
            image_w=images[0],
            image_l=images[1],
            flip_w=draws.flip_w,
            flip_l=draws.flip_l,
            caption_dropped=draws.caption_dropped,
            original_size_w=geometry[0].original_size,
            original_size_l=geometry[1].original_size,
            crop_top_left_w=geometry[0].crop_top_left,
            crop_top_left_l=geometry[1].crop_top_left,
        )
