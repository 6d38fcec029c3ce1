"""Per-pair random streams (spec §5 "Randomness").

Every random draw that concerns one preference pair (t, noise, caption dropout, flips, crops,
inversion jitter, VAE sample) comes from a generator seeded by (run seed, epoch, global pair index)
and a named stream, so results do not depend on batch layout, device count or resumption.
Streams keep independent draws apart: ``"data"`` (flips, crops, caption dropout) and ``"method"``
(timestep, noise, jitter, VAE sample) never share numbers.
"""

from __future__ import annotations

import hashlib

import torch

STREAMS = ("data", "method")


def pair_seed(seed: int, epoch: int, pair_index: int, stream: str) -> int:
    """A 63-bit seed from (seed, epoch, pair_index, stream) via BLAKE2b; stable across platforms."""
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; expected one of {', '.join(STREAMS)}")
    key = f"{seed}:{epoch}:{pair_index}:{stream}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def pair_generator(
    seed: int, epoch: int, pair_index: int, stream: str, device: str | torch.device = "cpu"
) -> torch.Generator:
    """A fresh ``torch.Generator`` for one pair's draws in one stream."""
    gen = torch.Generator(device=device)
    gen.manual_seed(pair_seed(seed, epoch, pair_index, stream))
    return gen


def pair_generators(
    seed: int,
    epoch: int,
    pair_indices: list[int] | torch.Tensor,
    stream: str,
    device: str | torch.device = "cpu",
) -> list[torch.Generator]:
    """One generator per pair of a micro-batch, in batch order."""
    indices = pair_indices.tolist() if isinstance(pair_indices, torch.Tensor) else list(pair_indices)
    return [pair_generator(seed, epoch, int(i), stream, device) for i in indices]


def randn_per_pair(
    generators: list[torch.Generator], shape: tuple[int, ...], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Stack one ``randn(shape)`` per generator → [len(generators), *shape] (drawn on the CPU)."""
    return torch.stack([torch.randn(shape, generator=g, dtype=dtype) for g in generators])
