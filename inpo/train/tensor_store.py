"""A name → tensor store in memory, optionally backed by safetensors shards in a folder (the caches' I/O).

    store = TensorStore(root)            # root=None: memory only
    store.get("inv/12/w/0/1")            # None when absent (counted as a miss)
    store.put("inv/12/w/0/1", walk)      # kept in memory; queued for the next shard when on disk
    store.flush()                        # write queued tensors as one shard (atomic), e.g. at a checkpoint

On disk, ``root`` holds ``meta.json`` (what the entries were computed from, for people) and
``shard-<rank>-<uuid>.safetensors`` files. A shard is written to a dot-prefixed temporary name,
fsynced and renamed, so a killed write never leaves a shard that looks complete; several processes
(ranks, runs) can add shards to one folder at once. Shards are indexed (headers only) when the store
opens and a shard is read whole the first time one of its entries is asked for. Tensors are stored
on the CPU, contiguous, in their own dtype.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch

from ..io import write_json_atomic

SHARD_GLOB = "shard-*.safetensors"


class TensorStore:
    def __init__(
        self,
        root: str | Path | None,
        *,
        meta: dict[str, Any] | None = None,
        rank: int = 0,
        flush_every: int = 512,
    ) -> None:
        self.root = Path(root) if root is not None else None
        self.rank = rank
        self.flush_every = flush_every
        self.hits = 0
        self.misses = 0
        self._memory: dict[str, torch.Tensor] = {}
        self._pending: dict[str, torch.Tensor] = {}
        self._on_disk: dict[str, Path] = {}
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            if meta is not None and not (self.root / "meta.json").exists():
                write_json_atomic(self.root / "meta.json", meta)
            self._index_shards()

    def _index_shards(self) -> None:
        from safetensors import safe_open

        assert self.root is not None
        for shard in sorted(self.root.glob(SHARD_GLOB)):
            try:
                with safe_open(str(shard), framework="pt") as fh:
                    names = list(fh.keys())
            except Exception as err:  # safetensors raises its own error types for a damaged header
                raise ValueError(
                    f"{shard}: not a readable safetensors shard ({err}); delete it (the cache recomputes it)"
                ) from err
            for name in names:
                self._on_disk.setdefault(name, shard)

    def __contains__(self, name: str) -> bool:
        return name in self._memory or name in self._on_disk

    def __len__(self) -> int:
        return len(self._memory.keys() | self._on_disk.keys())

    def get(self, name: str) -> torch.Tensor | None:
        """The tensor stored under ``name`` (CPU), or None; counts a hit or a miss."""
        if name not in self._memory and name in self._on_disk:
            self._load_shard(self._on_disk[name])
        tensor = self._memory.get(name)
        if tensor is None:
            self.misses += 1
        else:
            self.hits += 1
        return tensor

    def _load_shard(self, shard: Path) -> None:
        from safetensors.torch import load_file

        for name, tensor in load_file(str(shard), device="cpu").items():
            self._memory.setdefault(name, tensor)

    def put(self, name: str, tensor: torch.Tensor) -> None:
        """Keep ``tensor`` (moved to the CPU) under ``name``; on disk, flush every ``flush_every`` entries."""
        value = tensor.detach().to("cpu").clone(memory_format=torch.contiguous_format)  # no shared storage
        self._memory[name] = value
        if self.root is not None:
            self._pending[name] = value
            if len(self._pending) >= self.flush_every:
                self.flush()

    def flush(self) -> Path | None:
        """Write the queued entries as one new shard (atomically); returns its path (None if nothing queued)."""
        if self.root is None or not self._pending:
            return None
        from safetensors.torch import save_file

        name = f"shard-{self.rank}-{uuid.uuid4().hex}.safetensors"
        final = self.root / name
        tmp = self.root / f".{name}.tmp"
        save_file(self._pending, str(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        for key in self._pending:
            self._on_disk.setdefault(key, final)
        self._pending.clear()
        return final


def digest(obj: Any) -> str:
    """A short content name for a JSON-able description (a cache folder's fingerprint)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
