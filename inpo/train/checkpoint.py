"""Atomic training checkpoints: ``<root>/step-000050/`` holds

- ``unet/``          the trainable weights as safetensors (full UNet or LoRA adapter), loadable by diffusers
- ``optimizer.pt``   optimizer state (tensors and numbers only: loads with ``weights_only=True``)
- ``state.json``     step, epoch, LR-scheduler state, guard counters, metrics of the step

A checkpoint is written to ``step-000050.tmp`` and renamed when complete, so a killed write never
leaves a folder that looks complete. No global RNG state is stored: every random draw comes from
per-pair generators (:mod:`inpo.rng`), so the step number is the whole data position.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^step-(\d{6,})$")


def checkpoint_dirs(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | Path, at_most: int | None = None) -> Path | None:
    """The newest complete checkpoint (of a step ≤ ``at_most``, when given), or None."""
    dirs = [d for d in checkpoint_dirs(root) if at_most is None or checkpoint_step(d) <= at_most]
    return dirs[-1] if dirs else None


def checkpoint_step(path: Path) -> int:
    """``step-000050`` → 50."""
    m = _NAME.match(path.name)
    if m is None:
        raise ValueError(f"{path}: not a checkpoint folder (step-NNNNNN)")
    return int(m.group(1))


def save_checkpoint(
    root: str | Path,
    step: int,
    *,
    write_weights: Callable[[Path], None],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint ``step`` atomically, then prune to the last ``keep``; return its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f"step-{step:06d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    write_weights(tmp / "unet")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=1))
    _fsync_dir(tmp)
    if final.exists():  # a re-run of the same step replaces the old copy
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob("step-*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint_state(path: str | Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore the optimizer from ``path`` and return its ``state.json``."""
    path = Path(path)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu"))
    return json.loads((path / "state.json").read_text())


def _fsync_dir(path: Path) -> None:
    for p in path.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())


def set_aside(root: str | Path, after_step: int = -1) -> Path | None:
    """Move the checkpoints of ``root`` with a step > ``after_step`` (all by default) into
    ``<root>.set-aside-<time>/`` (nothing is deleted); return that folder, or None if nothing moved.
    What ``inpo train --restart`` / ``--resume-from STEP`` do before training."""
    import time

    root = Path(root)
    later = [d for d in checkpoint_dirs(root) if checkpoint_step(d) > after_step]
    if not later:
        return None
    stamp = f"{root.name}.set-aside-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    n = 0
    while True:  # two set-asides within a second get two folders (mkdir is the atomic claim)
        aside = root.with_name(stamp if n == 0 else f"{stamp}-{n}")
        try:
            aside.mkdir(parents=True)
            break
        except FileExistsError:
            n += 1
    for d in later:
        os.replace(d, aside / d.name)
    return aside
