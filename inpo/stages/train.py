"""``inpo train [--method NAME]``: preference-train each method of ``methods`` (or one) from the base,
or from the SFT stage's UNet when ``sft.enabled`` (then it is both policy and reference)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import layout
from ..config import Config
from ..curves import write_curve_png, write_curve_tsv
from ..errors import InputError
from ..io import write_json_atomic
from ..model_card import training_start, write_model_card
from ..models.families import family_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method", default=None, help="train only this method (default: every one in `methods`)"
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--restart",
        action="store_true",
        help="start from step 0: this run's checkpoints are moved aside (default: resume from the latest)",
    )
    start.add_argument(
        "--resume-from",
        type=int,
        default=None,
        metavar="STEP",
        help="resume from this run's checkpoint at STEP (later ones are moved aside)",
    )


def need_a_winner(cfg: Config, methods: list[str]) -> list[str]:
    """Which of ``methods`` (and the SFT stage, when on) cannot train on a tie."""
    from ..methods import METHODS

    names = [m for m in methods if m in METHODS and not METHODS[m].accepts_ties]
    return names + (["the SFT stage (sft.enabled)"] if cfg.sft.enabled else [])


def preflight(cfg: Config, method: str | None = None) -> None:
    """The pair data, the pair index and every weights location, before any model is loaded."""
    from ..data.checks import check_data_source, check_pair_index
    from ..locations import check_model_locations
    from ..methods import METHODS
    from ..models.loading import is_flow_model
    from ..train.optim import check_optimizer

    check_optimizer(cfg.train)
    check_data_source(cfg)
    check_model_locations(cfg)
    names = [method] if method else list(cfg.methods)
    soft = [m for m in names if m in METHODS and "soft_label_w" in METHODS[m].pair_fields]
    check_pair_index(cfg, need_a_winner(cfg, names), soft)
    flow = is_flow_model(cfg.model)
    for name in names:
        METHODS[name].check_settings(getattr(cfg.method, name), flow=flow)


def run(
    cfg: Config, method: str | None = None, restart: bool = False, resume_from: int | None = None
) -> None:
    from ..models.starting import starting_model
    from ..train.loop import train
    from ..train.run import training_run
    from ..train.validation import validation_hook

    names = [method] if method else list(cfg.methods)
    unknown = [m for m in names if m not in cfg.methods]
    if unknown:
        raise SystemExit(f"inpo train: --method {unknown[0]} is not in methods: {cfg.methods}")
    for name in names:
        index, start = layout.pair_index(cfg), starting_model(cfg)
        run_ = training_run(
            cfg,
            name,
            index_path=index,
            out_dir=layout.train_dir(cfg, name),
            ckpt_root=layout.checkpoint_root(cfg, name),
            model=start,
            validate=validation_hook(cfg),
        )
        if restart or resume_from is not None:
            _choose_start(run_.ckpt_dir, name, -1 if restart else resume_from)
        result = train(run_)
        summary = {
            "method": name,
            "steps": result.steps,
            "skipped_nonfinite": result.skipped_nonfinite,
            **result.last,
        }
        write_json_atomic(run_.out_dir / "summary.json", summary)
        write_curve_tsv(result.metrics_path, layout.training_curve(cfg, name))  # for `dvc plots`
        write_curve_png(result.metrics_path, layout.training_curve_png(cfg, name), f"{name} training")
        write_model_card(layout.train_weights(cfg, name), cfg, name, training_start(cfg), summary)
        # the same adapter for kohya-ss / AUTOMATIC1111 / ComfyUI (UNet families; SD3's diffusers-layout
        # adapter is what those tools read for SD3)
        if cfg.model.lora.enabled and family_spec(cfg.model.family).denoiser == "unet":
            from ..models.lora_export import export_kohya

            print(f"kohya-layout LoRA: {export_kohya(layout.train_weights(cfg, name))}")
        print(json.dumps(summary))


def _choose_start(folder: Path, name: str, step: int | None) -> None:
    """``--restart`` (step -1) / ``--resume-from STEP``: set aside the checkpoints after ``step``."""
    from ..train.checkpoint import checkpoint_dirs, checkpoint_step, set_aside

    steps = [checkpoint_step(d) for d in checkpoint_dirs(folder)]
    if step is not None and step >= 0 and step not in steps:
        raise InputError(f"--resume-from {step}: {folder} has checkpoints at steps {steps or 'none'}")
    aside = set_aside(folder, after_step=-1 if step is None else step)
    if aside is not None:
        which = "all checkpoints" if step is None or step < 0 else f"checkpoints after step {step}"
        print(f"[{name}] {which} moved to {aside}", flush=True)
