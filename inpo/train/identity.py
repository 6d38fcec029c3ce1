"""What a training stage's result depends on, and the checkpoint folder named by it.

A run's identity is its config sections (method, train, model, data, sft), the content hash of the
pair index, the content identity of the starting model (:func:`inpo.identity.location_identity`:
a local folder by sha256, a hub id by resolved revision) and the sha256 of the stage's code (the
files ``dvc.yaml`` tracks for it). Checkpoints live in ``<run.ckpt_root>/<fingerprint>``:
a retry of the same run resumes; a run whose data, starting model, code or config changed gets a
fresh folder and says which of these differ from the newest older folder, which is kept untouched
(nothing is deleted, nothing stale is resumed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import to_dict
from ..config.sections import ModelConfig, TrainConfig
from ..identity import HashCache, code_sha256, location_identity, project_root, short
from ..io import write_json_atomic
from .checkpoint import latest_checkpoint

if TYPE_CHECKING:
    from .run import TrainRun

IDENTITY_FILE = "identity.json"
LOCATIONS = ("pretrained", "unet", "unet_lora", "vae")


def model_content(model: ModelConfig, cache: HashCache) -> dict[str, Any]:
    """``model``'s settings with every weights location replaced by its content identity."""
    out = to_dict(model)
    for name in LOCATIONS:
        revision = model.revision if name == "pretrained" else None
        out[name] = location_identity(getattr(model, name), revision, cache)
    return out


def stage_code(method: str) -> str:
    """sha256 of the code ``dvc.yaml`` tracks for the stage that trains ``method`` (sft, or train)."""
    from ..pipeline.dvc import code_deps
    from ..pipeline.stages import STAGE_BY_NAME

    root = project_root()
    return code_sha256(code_deps(STAGE_BY_NAME["sft" if method == "sft" else "train"], root), root)


BOOKKEEPING = ("checkpoint_every", "keep_checkpoints", "validate_every", "max_nonfinite_in_row")


def trajectory_settings(train: TrainConfig) -> dict[str, Any]:
    """``train`` without what leaves the weights at every step unchanged: checkpoint and validation
    cadence, and ``max_steps`` under a constant schedule (so a run can be extended and resumes)."""
    out = {k: v for k, v in to_dict(train).items() if k not in BOOKKEEPING}
    if train.lr_schedule == "constant":
        out.pop("max_steps")
    return out


def training_identity(run: TrainRun, cache: HashCache) -> dict[str, Any]:
    """The four things a training run's result depends on (JSON-able)."""
    identity = {
        "config": {
            "method": run.name,
            "method_config": to_dict(run.method.config),
            "train": trajectory_settings(run.train),
            "data": to_dict(run.data),
            "model": to_dict(run.model),
        },
        "pair_index": {"sha256": cache.file_sha256(Path(run.index_path))},
        "starting_model": model_content(run.model, cache),
        "code": {"sha256": stage_code(run.name)},
    }
    cache.save()
    return json.loads(json.dumps(identity))  # tuples → lists, as read back


def open_checkpoint_dir(run: TrainRun) -> Path:
    """``run.ckpt_root/<fingerprint of the run's identity>``, with ``identity.json`` in it.

    When it holds no checkpoint yet and an older folder of ``ckpt_root`` does, prints (main process)
    which parts of the identity differ: that run is kept, not resumed."""
    from ..layout import HASH_CACHE_NAME

    cache = HashCache(run.cache_root / HASH_CACHE_NAME if run.cache_root is not None else None)
    identity = training_identity(run, cache)
    folder = run.ckpt_root / short(identity)
    if latest_checkpoint(folder) is None and os.environ.get("RANK", "0") == "0":
        note = _superseded_note(run.ckpt_root, folder, identity)
        if note:
            print(f"[{run.name}] starting fresh in {folder}: {note}", flush=True)
    if not (folder / IDENTITY_FILE).is_file():
        write_json_atomic(folder / IDENTITY_FILE, identity)
    return folder


def _superseded_note(root: Path, folder: Path, identity: dict[str, Any]) -> str:
    """What differs from the newest other folder of ``root`` holding checkpoints ("" if none)."""
    others = [
        p
        for p in (root.iterdir() if root.is_dir() else ())
        if p != folder and (p / IDENTITY_FILE).is_file() and latest_checkpoint(p) is not None
    ]
    if not others:
        return ""
    newest = max(others, key=lambda p: (p / IDENTITY_FILE).stat().st_mtime_ns)
    try:
        old = json.loads((newest / IDENTITY_FILE).read_text())
    except (OSError, ValueError):
        old = {}
    changed = [what for key, what in PARTS.items() if old.get(key) != identity.get(key)]
    step = latest_checkpoint(newest)
    return (
        f"the checkpoints in {newest} (up to {step.name if step else '?'}) were made with another "
        f"{', '.join(changed) or 'identity'}; they are kept there and not resumed"
    )


PARTS = {
    "config": "config",
    "pair_index": "pair data (pair index content)",
    "starting_model": "starting model",
    "code": "stage code",
}
