"""``inpo sft``: optional supervised fine-tuning of the reference on winners (``sft.enabled``).

When off, the stage writes a small marker and costs nothing: the reference is the base. When on,
the result (``outputs/sft/unet``: a full UNet, or a LoRA adapter that the train stage merges) is
both policy and reference of preference training."""

from __future__ import annotations

import json

from .. import layout
from ..config import Config
from ..io import write_json_atomic


def preflight(cfg: Config) -> None:
    """With ``sft.enabled``: the pair data, a tie-free pair index and the base model's locations."""
    if not cfg.sft.enabled:
        return
    from ..data.checks import check_data_source, check_pair_index
    from ..locations import check_model_locations
    from ..train.optim import check_optimizer

    check_optimizer(cfg.train)
    check_data_source(cfg)
    check_model_locations(cfg)
    check_pair_index(cfg, ["the SFT stage (sft.enabled)"])


def run(cfg: Config) -> None:
    out = layout.sft_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.sft.enabled:
        write_json_atomic(out / "summary.json", {"enabled": False})
        print("sft: disabled (sft.enabled=false); the reference is the base model")
        return
    from ..train.loop import train
    from ..train.run import training_run
    from ..train.validation import validation_hook

    run_ = training_run(
        cfg,
        "sft",
        index_path=layout.pair_index(cfg),
        out_dir=out,
        ckpt_root=layout.checkpoint_root(cfg, "sft"),
        model=cfg.model,
        max_steps=cfg.sft.max_steps,
        learning_rate=cfg.sft.learning_rate,
        validate=validation_hook(cfg),
    )
    result = train(run_)
    summary = {"enabled": True, "steps": result.steps, **result.last}
    write_json_atomic(out / "summary.json", summary)
    print(json.dumps(summary))
