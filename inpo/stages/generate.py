"""``inpo generate``: images of the base and every trained method for the evaluation prompt sets.

Writes ``<paths.outputs>/generate/<model>/<prompt_set>/<prompt_id>_<seed>.png`` and the manifest
``generate/items.parquet``. Same prompts, seeds, pipeline and sampler for every model (``sample``);
only the UNet differs. Resumable (existing images are kept); run under ``accelerate launch`` to
split the items across processes. See :mod:`evaluation.generate`.
"""

from __future__ import annotations

import argparse
import json
import shutil

from .. import layout
from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=None, help="generate only these models (default: all)")
    parser.add_argument(
        "--restart", action="store_true", help="delete the chosen models' existing images and start over"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def preflight(cfg: Config) -> None:
    from evaluation.prompts import check_prompt_sets

    from ..locations import check_model_locations

    check_model_locations(cfg, extra_models=True)
    check_prompt_sets(cfg.eval)


def run(cfg: Config, models: list[str] | None = None, restart: bool = False, progress: bool = True) -> None:
    from accelerate import PartialState

    from evaluation.generate import GenerationError, generate_images, model_specs
    from evaluation.prompts import eval_items

    state = PartialState()
    root = layout.generate_dir(cfg)
    try:
        specs = model_specs(cfg, models)
        items = eval_items(cfg.eval, base_seed=cfg.sample.seed)
        if restart and state.is_main_process:
            for spec in specs:
                shutil.rmtree(root / spec.name, ignore_errors=True)
        state.wait_for_everyone()
        table = generate_images(cfg, specs, items, root, progress=progress, state=state)
    except GenerationError as err:
        raise SystemExit(f"inpo generate: {err}") from None
    if table is not None:
        counts = table.groupby(["model", "prompt_set"]).size()
        summary = {f"{m}/{s}": int(n) for (m, s), n in counts.items()}
        print(json.dumps(summary))
        print(f"wrote {layout.generate_manifest(cfg)} ({len(table)} images)")
