"""The loop's per-step records: JSON lines appended per step, truncated on resume, averaged over processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def reduce_mean(accelerator: Any, values: dict[str, float]) -> dict[str, float]:
    """The mean of each value over the processes (a no-op on one)."""
    if accelerator.num_processes == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], device=accelerator.device, dtype=torch.float64)
    t = accelerator.reduce(t, reduction="mean")
    return dict(zip(keys, t.tolist(), strict=True))


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete records of ``path`` (a line cut short by a kill is left out); [] if missing."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def truncate_jsonl(path: Path, start_step: int) -> None:
    """Drop records of steps ≥ start_step (written after the checkpoint a resumed run starts from) and
    any line a kill cut short."""
    if not path.exists():
        return
    keep = [json.dumps(r) for r in read_jsonl(path) if r.get("step", start_step) < start_step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    tmp.replace(path)
