"""What a model's generated images depend on, and how a changed dependency is handled.

``settings.json`` in each model's folder records :func:`generation_settings`: the weights'
locations and content hashes (:func:`inpo.identity.location_identity`) and the sampler. Prompts and
seeds are each image's path. :func:`check_settings` moves images made with other settings aside
(nothing deleted) so that they are regenerated, never mixed with new ones.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inpo.io import write_json_atomic

if TYPE_CHECKING:
    from evaluation.generate import ModelSpec
    from inpo.config.sections import SampleConfig
    from inpo.identity import HashCache

SETTINGS_FILE = "settings.json"


def weights_identity(spec: ModelSpec, cache: HashCache) -> dict[str, Any]:
    """The content of every weights location of ``spec`` (:func:`inpo.identity.location_identity`)."""
    from inpo.identity import location_identity

    m = spec.model
    return {
        "pretrained": location_identity(m.pretrained, m.revision, cache),
        **{k: location_identity(getattr(m, k), None, cache) for k in ("unet", "unet_lora", "vae")},
        "lora": location_identity(spec.lora, None, cache),
    }


def generation_settings(
    spec: ModelSpec, sample_cfg: SampleConfig, cache: HashCache | None = None
) -> dict[str, Any]:
    """What a model's images depend on: its weights (locations and, with ``cache``, their content
    hashes) and the sampling settings (not batch size). Prompts and seeds are the image's path."""
    from evaluation.generate import sampling_resolution
    from inpo.identity import HashCache

    return {
        "model": spec.describe(),
        "weights": weights_identity(spec, cache if cache is not None else HashCache(None)),
        "steps": sample_cfg.steps,
        "guidance": sample_cfg.guidance,
        "scheduler": sample_cfg.scheduler,
        "resolution": sampling_resolution(sample_cfg),
        "dtype": sample_cfg.dtype,
    }


def check_settings(folder: Path, settings: dict[str, Any], superseded: Path) -> str | None:
    """Record ``settings`` in ``folder/settings.json``; images made with other settings (other
    weights, sampler, size) are moved aside to ``superseded/<folder name>-<their fingerprint>``
    (nothing deleted) so that they are regenerated. Returns a note when that happened."""
    from inpo.identity import short

    file = folder / SETTINGS_FILE
    expected = json.loads(json.dumps(settings))  # tuples → lists, as read back
    note = None
    if file.is_file():
        try:
            recorded = json.loads(file.read_text())
        except ValueError:
            recorded = {}
        if recorded == expected:
            return None
        changed = sorted(k for k in set(recorded) | set(expected) if recorded.get(k) != expected.get(k))
        aside = superseded / f"{folder.name}-{short(recorded)}"
        if aside.exists():
            shutil.rmtree(folder)  # the same images are already kept there
        else:
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder, aside)
        note = (
            f"{folder}: its images were made with other {', '.join(changed) or 'settings'}; moved to "
            f"{aside}, regenerating"
        )
    write_json_atomic(file, expected)
    return note
