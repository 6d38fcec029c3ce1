"""``inpo train [--method NAME]``: preference-train each method of ``methods`` (or one) from the base,
or from the SFT stage's UNet when ``sft.enabled`` (then it is both policy and reference)."""

from __future__ import annotations

import argparse
import json

from .. import layout
from ..config import Config
from ..curves import write_curve_png, write_curve_tsv
from ..io import write_json_atomic
from ..model_card import write_model_card


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method", default=None, help="train only this method (default: every one in `methods`)"
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

    check_data_source(cfg)
    check_model_locations(cfg)
    check_pair_index(cfg, need_a_winner(cfg, [method] if method else list(cfg.methods)))


def run(cfg: Config, method: str | None = None) -> None:
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
        origin = f"the SFT stage's UNet ({layout.sft_weights(cfg)})" if cfg.sft.enabled else cfg.model.base
        write_model_card(layout.train_weights(cfg, name), cfg, name, origin, summary)
        if cfg.model.lora.enabled:  # the same adapter for kohya-ss / AUTOMATIC1111 / ComfyUI
            from ..models.lora_export import export_kohya

            print(f"kohya-layout LoRA: {export_kohya(layout.train_weights(cfg, name))}")
        print(json.dumps(summary))
