"""``inpo check``: pre-flight before GPU hours are spent.

Validates the config (done by the CLI before this runs), finds the pair data (or the stage that
will make it), loads every configured weight (base model components, the evaluation scorers), and
prints what will run and a memory estimate per device. Exits nonzero with the reason on failure.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import layout
from ..config import Config
from ..models.families import family_spec

GIB = 1024**3
BYTES = {"no": 4, "fp16": 2, "bf16": 2}


class CheckError(RuntimeError):
    """A pre-flight failure; the message names the setting at fault."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-weights", action="store_true", help="skip loading weights (config and data only)"
    )
    parser.add_argument(
        "--shapes-only",
        action="store_true",
        help="size the model from its config files (no weights read; scorers not loaded): a memory "
        "estimate for a model not downloaded, e.g. model.pretrained=configs/models/sd21-768-v",
    )


# ---------------------------------------------------------------- data


def check_data(cfg: Config) -> str:
    """One line about the pair source and the pair index, after the checks the stages run on them
    (``data.source`` exists or the world makes it; an existing index was built from it, and has no
    ties if a method that needs a winner will read it)."""
    from ..data.checks import check_data_source, check_pair_index
    from ..data.sources import resolve_source
    from ..worlds import get_world
    from .train import need_a_winner

    planned = get_world(cfg).pairs_planned(cfg)
    check_data_source(cfg, made_by_a_stage=planned)
    source = cfg.data.source
    if not Path(source).exists():
        return f"data.source: {source} (made by the world_pairs stage, world {cfg.world})"
    found = resolve_source(source, cfg.data.format, cfg.data.split)
    line = f"data.source: {source} ({found.kind}, {len(found.shards)} shard(s))"
    index = layout.pair_index(cfg)
    if index.is_file():
        import pyarrow.parquet as pq

        check_pair_index(cfg, need_a_winner(cfg, list(cfg.methods)))
        line += f"; pair index {index}: {pq.ParquetFile(index).metadata.num_rows} pairs"
    return line


# ---------------------------------------------------------------- weights and memory


@dataclass(frozen=True)
class MemoryEstimate:
    trainable_params: int
    frozen_params: int
    unet_params: int
    gib_per_device: float
    formula: str


# fp32 weights + fp32 grads + the optimizer's state, per trainable parameter
OPTIMIZER_BYTES = {"adamw": 16, "adafactor": 8, "adamw8bit": 10}  # 8-bit AdamW: two 1-byte moments


def estimate_memory(
    cfg: Config, unet_params: int, trainable_params: int, frozen_params: int
) -> MemoryEstimate:
    """Training state per device, activations excluded: fp32 master weights + grads + AdamW moments
    of the trainable parameters (16 B each; Adafactor ~8 B, 8-bit AdamW 10 B), the frozen reference UNet copy at the
    training precision (none with LoRA: the adapter is switched off), text encoders and VAE."""
    half = BYTES[cfg.train.mixed_precision]
    per_trainable = OPTIMIZER_BYTES[cfg.train.optimizer]
    lora = cfg.model.lora.enabled
    policy_frozen = (unet_params if lora else 0) * 4  # the base UNet under a LoRA adapter
    reference = 0 if lora else unet_params * half
    total = trainable_params * per_trainable + policy_frozen + reference + frozen_params * half
    formula = (
        f"{trainable_params:,} trainable × {per_trainable} B + reference {reference / GIB:.2f} GiB"
        f" + frozen encoders {frozen_params:,} × {half} B"
    )
    return MemoryEstimate(trainable_params, frozen_params, unet_params, total / GIB, formula)


def _sizes(cfg: Config, shapes_only: bool) -> tuple[Any, int, int]:
    """(the UNet, its parameter count, the frozen modules' count), loaded or from configs only."""
    from ..models import load_components
    from ..models.shapes import model_shapes

    try:
        if shapes_only:
            shapes = model_shapes(cfg.model)
            return shapes.unet, shapes.unet_params, shapes.frozen_params
        components = load_components(cfg.model)
    except Exception as err:  # missing folder, wrong family, hub unreachable: say which setting
        raise CheckError(f"model.pretrained: cannot load {cfg.model.pretrained!r}: {err}") from None
    frozen = sum(p.numel() for m in components.frozen_modules for p in m.parameters())
    return components.unet, sum(p.numel() for p in components.unet.parameters()), frozen


def check_weights(cfg: Config, shapes_only: bool = False) -> list[str]:
    """Load the base components and every configured scorer (``shapes_only``: size the base from its
    config files, load no scorer); lines describing what loaded."""
    import torch

    from ..models.reference import add_lora_adapter, lora_parameters

    lines = []
    unet, unet_params, frozen = _sizes(cfg, shapes_only)
    trainable = unet_params
    if cfg.model.lora.enabled:
        add_lora_adapter(unet, cfg.model.lora)
        trainable = sum(p.numel() for p in lora_parameters(unet))
    network = "UNet" if family_spec(cfg.model.family).denoiser == "unet" else "transformer"
    lines.append(f"model: {cfg.model.family} {cfg.model.pretrained} ({network} {unet_params:,} parameters)")
    estimate = estimate_memory(cfg, unet_params, trainable, frozen)
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] or ["cpu"]
    for i, name in enumerate(devices):
        lines.append(
            f"memory, device {i} ({name}): ~{estimate.gib_per_device:.2f} GiB + activations "
            f"(grow with train.pairs_per_device={cfg.train.pairs_per_device} × resolution²)"
        )
    lines.append(f"  = {estimate.formula}")
    if shapes_only:
        return [*lines, "scorers: not loaded (--shapes-only)"]
    from evaluation.scorers.base import build_scorer

    for name in cfg.eval.scorers:
        try:
            build_scorer(name, cfg.eval)
        except Exception as err:
            raise CheckError(f"eval.scorers: cannot load scorer {name!r}: {err}") from None
        lines.append(f"scorer {name}: loaded")
    return lines


def _describe(cfg: Config, stage: str, item: str) -> str:
    """One line on what ``stage`` (a stage table name, ``item`` its method) will do."""
    if stage == "world_pairs":
        return f"{cfg.world} world's pairs → {layout.world_pairs_dir(cfg)}"
    if stage == "prepare":
        return f"{cfg.data.source} → {layout.pair_index(cfg)}"
    if stage == "sft":
        return f"on, {cfg.sft.max_steps} steps" if cfg.sft.enabled else "off (reference = base)"
    if stage == "train":
        t = cfg.train
        beta = getattr(getattr(cfg.method, item), "beta", None)
        line = f"{t.max_steps} steps × {t.pairs_per_device} pairs/device × accumulation {t.grad_accum}"
        return line + (f", beta={beta}" if beta is not None else "")
    if stage == "generate":
        models = ", ".join(["base", *cfg.methods])
        return f"{models} on {', '.join(cfg.eval.prompt_sets)}, {cfg.sample.steps} steps, guidance {cfg.sample.guidance}"
    if stage == "score":
        return ", ".join(cfg.eval.scorers)
    return f"vs {cfg.eval.baseline}"


def plan(cfg: Config) -> list[str]:
    """What the pipeline will run with this config: one line per stage of the stage table."""
    from ..pipeline.stages import pipeline_stages, stage_of

    lines = []
    for name in pipeline_stages(cfg):
        stage, item = stage_of(name)
        lines.append(f"{name}: {_describe(cfg, stage.name, item)}")
    return lines


def preflight(cfg: Config) -> None:
    """The config-level checks of every command (world, scorers, prompt sets); the rest runs below."""
    from .show_config import preflight as config_checks

    config_checks(cfg)


def run(cfg: Config, no_weights: bool = False, shapes_only: bool = False) -> None:
    from evaluation.prompts import check_prompt_sets

    from ..locations import check_model_locations
    from ..worlds import get_world

    print("config: valid")
    try:
        print(f"world: {get_world(cfg).name}")
        print(check_data(cfg))
        check_model_locations(cfg, extra_models=True)  # every weights location exists (or is a hub id)
        check_prompt_sets(cfg.eval)
        if not no_weights:
            for line in check_weights(cfg, shapes_only):
                print(line)
    except CheckError as err:  # (an InputError goes to the command: exit 2, like every stage)
        print(f"inpo check: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print("will run:")
    for line in plan(cfg):
        print(f"  {line}")
    print("check: OK")
