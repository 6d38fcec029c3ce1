"""Which pairs each process sees at each optimizer step.

One global order per epoch, a permutation drawn from (seed, epoch). It is cut into *global batches*
of ``pairs_per_device × world_size × grad_accum`` pairs, one per optimizer step; global batch ``s``
gives micro-batch ``a`` of process ``r`` the slice starting at ``(a × world_size + r) × pairs_per_device``.
So 2 processes × 1 accumulation step and 1 process × 2 accumulation steps train on the same pairs
at every step, and a resumed run continues at exactly the next pair. The last incomplete global
batch of an epoch is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchLayout:
    num_pairs: int
    pairs_per_device: int
    world_size: int = 1
    grad_accum: int = 1

    @property
    def global_batch(self) -> int:
        return self.pairs_per_device * self.world_size * self.grad_accum

    @property
    def steps_per_epoch(self) -> int:
        return self.num_pairs // self.global_batch

    def __post_init__(self) -> None:
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the pair set has {self.num_pairs} pairs, fewer than one optimizer step's global batch of "
                f"{self.global_batch} (train.pairs_per_device × processes × train.grad_accum)"
            )


def epoch_order(num_pairs: int, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's permutation of pair indices, [num_pairs] int64."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_pairs, generator=gen)


def micro_batches(layout: BatchLayout, seed: int, step: int, rank: int = 0) -> list[list[int]]:
    """The ``grad_accum`` micro-batches (lists of pair indices) of process ``rank`` for optimizer step ``step``."""
    epoch, within = divmod(step, layout.steps_per_epoch)
    order = epoch_order(layout.num_pairs, seed, epoch)
    start = within * layout.global_batch
    out = []
    for a in range(layout.grad_accum):
        offset = start + (a * layout.world_size + rank) * layout.pairs_per_device
        out.append(order[offset : offset + layout.pairs_per_device].tolist())
    return out


def epoch_of(layout: BatchLayout, step: int) -> int:
    return step // layout.steps_per_epoch


def iterate_steps(
    layout: BatchLayout, seed: int, start_step: int, max_steps: int, rank: int = 0
) -> Iterator[tuple[int, int, list[list[int]]]]:
    """Yield (step, epoch, micro-batches) from ``start_step`` to ``max_steps`` (exclusive)."""
    for step in range(start_step, max_steps):
        yield step, epoch_of(layout, step), micro_batches(layout, seed, step, rank)
