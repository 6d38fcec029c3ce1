"""Fixed-seed images of every compared model: the same prompts, seeds and pipeline; only the UNet differs.

    specs = model_specs(cfg)                       # base, each trained method, sft, sample.extra_models
    items = eval_items(cfg.eval, base_seed=cfg.sample.seed)
    generate_images(cfg, specs, items, root)       # root/<model>/<prompt_set>/<prompt_id>_<seed>.png

Resumable: an image is written to a temporary file and renamed into place, so a path either holds a
complete PNG or does not exist; a rerun skips every existing path and generates the rest. A model's
folder keeps the settings it was generated with (``settings.json``: the weights' locations and
content hashes, the sampler); a rerun with other weights or settings moves the old images aside to
``<paths.checkpoints>/superseded/generate/`` and regenerates, never mixing images of two settings. Several processes (accelerate) split
each model's items ``process_index::num_processes``; the main process writes the manifest.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from evaluation.generation_settings import check_settings, generation_settings
from inpo import layout
from inpo.io import write_parquet_atomic, write_png_atomic
from inpo.layout import MANIFEST_FILE
from inpo.models.families import DENOISER_CLASSES

if TYPE_CHECKING:
    from evaluation.prompts import EvalItem
    from inpo.config import Config
    from inpo.config.sections import ModelConfig, SampleConfig

BASE_MODEL = "base"
MANIFEST_COLUMNS = ("model", "prompt_set", "prompt_id", "seed", "prompt", "category", "path")


class GenerationError(RuntimeError):
    """Generation cannot go on as configured; the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """One compared model: the components ``load_components(model)`` gives, plus an optional LoRA
    adapter folder merged into its UNet afterwards (a method trained with ``model.lora.enabled``)."""

    name: str
    model: ModelConfig
    lora: str | None = None

    def describe(self) -> dict[str, Any]:
        """The weights this model is made of (JSON-able), for settings files and reports."""
        m = self.model
        return {
            "pretrained": m.pretrained,
            "family": m.family,
            "unet": m.unet,
            "unet_lora": m.unet_lora,
            "lora": self.lora,
            "revision": m.revision,
            "variant": m.variant,
            "vae": m.vae,
        }


def weights_kind(folder: str | Path) -> str:
    """``"lora"`` for a folder with ``pytorch_lora_weights.safetensors``, ``"unet"`` for a UNet (or SD3
    transformer) folder (``config.json``) or a pipeline folder holding ``unet/`` (``transformer/``); a
    missing folder is an error."""
    from inpo.models.saving import LORA_WEIGHT_NAME

    path = Path(folder)
    if (path / LORA_WEIGHT_NAME).is_file():
        return "lora"
    if any((path / sub / "config.json").is_file() for sub in (".", *DENOISER_CLASSES)):
        return "unet"
    raise FileNotFoundError(
        f"{path}: neither a UNet folder (config.json), a pipeline folder (unet/config.json) nor a LoRA "
        f"adapter folder ({LORA_WEIGHT_NAME})"
    )


def _spec_from_weights(name: str, weights: str, start: ModelConfig) -> ModelSpec:
    """A model whose UNet is ``weights`` on top of ``start``: a full UNet replaces the UNet (and any
    LoRA of ``start``); a LoRA adapter is merged into ``start``'s UNet."""
    if not Path(weights).exists():  # a hub id: a UNet repo (its root holds config.json)
        return ModelSpec(name, dataclasses.replace(start, unet=weights, unet_lora=None))
    if weights_kind(weights) == "lora":
        return ModelSpec(name, start, lora=weights)
    return ModelSpec(name, dataclasses.replace(start, unet=weights, unet_lora=None))


def model_specs(cfg: Config, names: Sequence[str] | None = None) -> list[ModelSpec]:
    """``base`` (``model`` as configured), every method of ``methods`` (``outputs/train/<m>/unet``),
    ``sft`` when ``sft.enabled``, then ``sample.extra_models``; ``names`` keeps a subset (in that order).

    A method's LoRA adapter is merged on top of the model it was trained from (the SFT UNet when
    ``sft.enabled``, as in ``inpo train``); a full UNet replaces the base's UNet.
    """
    from inpo.models.starting import starting_model

    specs = [ModelSpec(BASE_MODEL, cfg.model)]
    start = starting_model(cfg)
    for method in cfg.methods:
        weights = layout.train_dir(cfg, method) / "unet"
        if names is not None and method not in names:
            continue
        if not weights.is_dir():
            raise GenerationError(
                f"{weights}: no trained weights for method {method!r}; run `inpo train --method {method}`"
            )
        specs.append(_spec_from_weights(method, str(weights), start))
    if cfg.sft.enabled and (names is None or "sft" in names):
        sft_weights = layout.sft_dir(cfg) / "unet"
        if not sft_weights.is_dir():
            raise GenerationError(f"{sft_weights}: sft.enabled but no SFT weights; run `inpo sft`")
        specs.append(_spec_from_weights("sft", str(sft_weights), cfg.model))
    for name, extra in cfg.sample.extra_models.items():
        if name in {s.name for s in specs} or name in (BASE_MODEL, "sft", *cfg.methods):
            raise GenerationError(f"sample.extra_models.{name}: the name is taken by a built-in model")
        specs.append(_spec_from_weights(name, extra, cfg.model))
    if names is not None:
        known = {s.name for s in specs}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise GenerationError(f"unknown model(s) {unknown}; valid: {', '.join(sorted(known))}")
        specs = [s for s in specs if s.name in names]
    return specs


def model_names(cfg: Config) -> list[str]:
    """Every model the config evaluates, in :func:`model_specs`' order (without loading anything)."""
    return [BASE_MODEL, *cfg.methods, *(["sft"] if cfg.sft.enabled else []), *cfg.sample.extra_models]


def sampling_resolution(sample_cfg: SampleConfig) -> int | None:
    """The square image side from ``sample.height``/``sample.width`` (None: the UNet's native size)."""
    h, w = sample_cfg.height, sample_cfg.width
    if h is not None and w is not None and h != w:
        raise GenerationError(f"sample.height={h} and sample.width={w}: only square images are supported")
    return h if h is not None else w


def image_path(root: str | Path, model: str, item: EvalItem) -> Path:
    """``root/<model>/<prompt_set>/<prompt_id>_<seed>.png``."""
    return Path(root) / model / item.prompt_set / f"{item.prompt_id}_{item.seed}.png"


def shard_items(items: Sequence[EvalItem], process_index: int, num_processes: int) -> list[EvalItem]:
    """This process's items: ``items[process_index::num_processes]``."""
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process_index {process_index} outside 0..{num_processes - 1}")
    return list(items[process_index::num_processes])


def pending_items(root: str | Path, model: str, items: Sequence[EvalItem]) -> list[EvalItem]:
    """Items whose image does not exist yet."""
    return [it for it in items if not image_path(root, model, it).is_file()]


def remove_partial_files(folder: str | Path) -> int:
    """Delete temporary files a killed run left (``.<name>.png.tmp-<pid>``, :func:`inpo.io.atomic_file`).

    Returns how many.
    """
    removed = 0
    for tmp in Path(folder).rglob(".*.png.tmp-*"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def generate_model(
    spec: ModelSpec,
    items: Sequence[EvalItem],
    root: str | Path,
    sample_cfg: SampleConfig,
    device: str | Any = "cpu",
    on_image: Callable[[Path], None] | None = None,
    progress: Any = None,
) -> int:
    """Generate ``spec``'s missing images among ``items``; returns how many were written.

    The model is loaded only when something is missing. ``on_image(path)`` is called after each
    image is in place; ``progress`` (a tqdm bar) is advanced per image.
    """
    import torch

    from evaluation.scorers.base import DTYPES
    from inpo.models import load_for_sampling
    from inpo.sampling import sample_images, to_pil

    todo = pending_items(root, spec.name, items)
    if not todo:
        return 0
    dtype = DTYPES[sample_cfg.dtype]
    components = load_for_sampling(spec.model, device, dtype, lora=spec.lora)
    unet = components.unet
    resolution = sampling_resolution(sample_cfg)
    written = 0
    for start in range(0, len(todo), sample_cfg.batch_size):
        batch = todo[start : start + sample_cfg.batch_size]
        images = sample_images(
            components,
            unet,
            [it.prompt for it in batch],
            [it.seed for it in batch],
            steps=sample_cfg.steps,
            guidance=sample_cfg.guidance,
            scheduler=sample_cfg.scheduler,
            resolution=resolution,
        )
        for item, image in zip(batch, to_pil(images)):
            path = image_path(root, spec.name, item)
            write_png_atomic(path, image)
            written += 1
            if progress is not None:
                progress.update(1)
            if on_image is not None:
                on_image(path)
    del components, unet
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return written


def manifest_table(root: str | Path, specs: Sequence[ModelSpec], items: Sequence[EvalItem]) -> pd.DataFrame:
    """One row per (model, item) with the image path relative to ``root``; a missing image is an error."""
    rows = []
    for spec in specs:
        for it in items:
            path = image_path(root, spec.name, it)
            if not path.is_file():
                raise GenerationError(f"{path}: missing after generation (did a process fail?)")
            rel = path.relative_to(root).as_posix()
            rows.append((spec.name, it.prompt_set, it.prompt_id, it.seed, it.prompt, it.category, rel))
    table = pd.DataFrame.from_records(rows, columns=list(MANIFEST_COLUMNS))
    table["seed"] = table["seed"].astype("int64")
    return table


def write_manifest(table: pd.DataFrame, path: str | Path, metadata: dict[str, Any]) -> Path:
    """The manifest as parquet (atomic), with ``metadata`` (models, settings) as JSON in the schema."""
    import pyarrow as pa

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), b"inpo.generate": json.dumps(metadata)}
    )
    return write_parquet_atomic(path, arrow)


def read_manifest(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``(table, metadata)`` of a manifest written by :func:`write_manifest`; checks the columns."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no generation manifest; run `inpo generate` first")
    arrow = pq.read_table(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in arrow.column_names]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {list(MANIFEST_COLUMNS)}")
    raw = (arrow.schema.metadata or {}).get(b"inpo.generate")
    return arrow.to_pandas().loc[:, list(MANIFEST_COLUMNS)], json.loads(raw) if raw else {}


def generate_images(
    cfg: Config,
    specs: Sequence[ModelSpec],
    items: Sequence[EvalItem],
    root: str | Path,
    progress: bool = True,
    on_image: Callable[[Path], None] | None = None,
    state: Any = None,
) -> pd.DataFrame | None:
    """Every model's missing images, this process's share; the main process writes ``root/items.parquet``.

    ``state`` is an ``accelerate.PartialState`` (built here when None). Returns the manifest on the
    main process, None elsewhere.
    """
    from tqdm.auto import tqdm

    if state is None:
        from accelerate import PartialState

        state = PartialState()
    from inpo.identity import HashCache

    root = Path(root)
    cache = HashCache(layout.hash_cache_file(cfg))
    settings = {s.name: generation_settings(s, cfg.sample, cache) for s in specs}
    if state.is_main_process:
        cache.save()
    superseded = Path(cfg.paths.checkpoints) / "superseded" / "generate"
    if state.is_main_process:
        if root.exists():
            remove_partial_files(root)
        for spec in specs:
            note = check_settings(root / spec.name, settings[spec.name], superseded)
            if note:
                print(f"generate: {note}", flush=True)
    state.wait_for_everyone()
    mine = shard_items(items, state.process_index, state.num_processes)
    total = sum(len(pending_items(root, spec.name, mine)) for spec in specs)
    bar = tqdm(
        total=total, desc="generate", disable=not (progress and state.is_main_process), mininterval=2.0
    )
    for spec in specs:
        bar.set_postfix_str(spec.name)
        generate_model(spec, mine, root, cfg.sample, state.device, on_image, bar)
    bar.close()
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    table = manifest_table(root, specs, items)
    metadata = {
        "models": [s.name for s in specs],
        "baseline": BASE_MODEL,
        "settings": settings,
    }
    configured = model_names(cfg)
    table, metadata = _keep_other_models(root / MANIFEST_FILE, table, metadata, items, configured)
    write_manifest(table, root / MANIFEST_FILE, metadata)
    return table


def _keep_other_models(
    path: Path,
    table: pd.DataFrame,
    metadata: dict[str, Any],
    items: Sequence[EvalItem],
    configured: Sequence[str],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Add the rows of models an earlier run generated (e.g. before ``--models dpo``) to the manifest,
    where every current item's image of that model still exists and the config still names the
    model (a method dropped from ``methods`` leaves its images on disk, not in the manifest)."""
    if not path.is_file():
        return table, metadata
    old, old_meta = read_manifest(path)
    keys = {(it.prompt_set, it.prompt_id, it.seed) for it in items}
    kept_models = []
    for model in old_meta.get("models", []):
        if model in metadata["models"] or model not in configured:
            continue
        rows = old[old["model"] == model]
        rows = rows[[k in keys for k in zip(rows["prompt_set"], rows["prompt_id"], rows["seed"])]]
        if len(rows) == len(keys) and all((path.parent / rel).is_file() for rel in rows["path"]):
            table = pd.concat([rows, table], ignore_index=True)
            kept_models.append(model)
    metadata = {
        **metadata,
        "models": [m for m in old_meta.get("models", []) if m in kept_models] + metadata["models"],
        "settings": {**{m: old_meta["settings"][m] for m in kept_models}, **metadata["settings"]},
    }
    return table, metadata
