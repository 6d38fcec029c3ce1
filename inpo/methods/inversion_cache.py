"""The frozen reference's DDIM-inversion walks (``method.inpo.inversion.cache``, spec §5), one per
image key: an image is (pair index, side, flipped, caption dropped), the caption conditioning the
inversion.

In memory for the run, or on disk as safetensors shards (:mod:`inpo.train.tensor_store`) under
``<paths.checkpoints>/cache/inversion/<fingerprint>/`` with ``cache_on_disk``: outside DVC's outputs
like checkpoints (regenerable, shared by resumed runs). The fingerprint (:func:`inversion_inputs`)
names every setting the walks depend on (the images, the reference UNet, the grid), so a changed
setting opens a fresh folder.

Cost. A miss computes the missing entries of the micro-batch in one batched, no-grad pass; a hit costs
a CPU→device copy and one model call per micro-batch (corrected mode's final partial step), none in
faithful mode. Size: a walk is ``L × C × h × w`` fp32 per image (SD1.5 at 512, L = 10: 640 KiB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import grid_inversion
from ..config.sections import InversionConfig
from ..inversion import EpsFn, InversionResult
from ..train.tensor_store import TensorStore, digest


def inversion_inputs(
    image_inputs: dict[str, Any], model_identity: dict[str, Any], inv: InversionConfig
) -> dict[str, Any]:
    """What the reference's inversion walks depend on: the images, the reference UNet, the grid."""
    return {
        **image_inputs,
        "kind": "inversion",
        **model_identity,
        "inversion": {"mode": inv.mode, "steps": inv.steps, "guidance": inv.guidance},
    }


@dataclass
class CachedInversion:
    result: InversionResult  # as inversion.invert(eta=0) returns it; n_model_calls includes any fill
    hits: int
    misses: int


class InversionCache:
    """Walks of the frozen reference's eta-0 inversion (:mod:`inpo.grid_inversion`), one per image key."""

    def __init__(self, store: TensorStore, abar: torch.Tensor, *, mode: str, steps: int) -> None:
        self.store = store
        self.abar = abar
        self.mode = mode
        self.steps = steps
        self.fill_calls = 0

    @classmethod
    def open(
        cls, inv: InversionConfig, abar: torch.Tensor, root: Path | None, meta: dict[str, Any], rank: int
    ) -> InversionCache:
        """In memory, or on disk under ``root/<fingerprint of meta>`` with ``inv.cache_on_disk``."""
        store = TensorStore(None, rank=rank)
        if inv.cache_on_disk:
            if root is None:
                raise ValueError("method.inpo.inversion.cache_on_disk: no cache folder (paths.checkpoints)")
            store = TensorStore(root / digest(meta), meta=meta, rank=rank)
        return cls(store, abar, mode=inv.mode, steps=inv.steps)

    def invert(
        self, x0: torch.Tensor, t: torch.Tensor, eps_fn: EpsFn, keys: Sequence[Any]
    ) -> CachedInversion:
        """x0: [N, C, H, W]; t: int64 [N]; keys: N :class:`inpo.train.encode.ImageKey`; eps_fn as for
        :func:`inpo.inversion.invert` (``rows`` index 0..N-1). Missing walks are computed in one
        batched no-grad pass and stored."""
        if len(keys) != x0.shape[0]:
            raise ValueError(f"InversionCache.invert: {x0.shape[0]} images but {len(keys)} keys")
        walks: list[torch.Tensor | None] = [self.store.get(k.inversion_name) for k in keys]
        missing = [i for i, w in enumerate(walks) if w is None]
        fill_calls = 0
        if missing:
            rows = torch.tensor(missing, dtype=torch.long, device=x0.device)

            def fill_eps(x: torch.Tensor, ts: torch.Tensor, sub: torch.Tensor) -> torch.Tensor:
                return eps_fn(x, ts, rows[sub.to(rows.device)])

            with torch.no_grad():
                new = grid_inversion.grid_latents(
                    x0[rows], fill_eps, self.abar, mode=self.mode, steps=self.steps
                )
            fill_calls = self.steps - 1 if self.mode == "corrected" else self.steps
            self.fill_calls += fill_calls
            for j, i in enumerate(missing):
                self.store.put(keys[i].inversion_name, new[:, j])
                walks[i] = new[:, j]
        walk = torch.stack([w.to(x0.device) for w in walks if w is not None], dim=1)
        result = grid_inversion.invert_from_grid(
            walk, x0, t, eps_fn, self.abar, mode=self.mode, steps=self.steps
        )
        result.n_model_calls += fill_calls
        return CachedInversion(result, hits=len(keys) - len(missing), misses=len(missing))

    def flush(self) -> None:
        self.store.flush()
