"""The model card written next to every trained UNet (``<weights>/README.md``, Hugging Face's format).

YAML front matter (``base_model``, ``library_name``, ``tags``) so the hub and its loaders recognise it,
then what the weights are: method and its settings, base and starting model, data, training length
and final metrics, and how to load them. Win-rates come later, from the evaluation stages: the train
stage's card points to them, and the report stage writes the evaluated card of every method
(``<outputs>/report/cards/<method>.md``: the same card with its win-rates, intervals and the
sampler they were measured with), which the flow also logs as ``README.md`` on the model's MLflow run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .config import Config, to_dict
from .io import write_text_atomic

METHOD_NAMES = {
    "inpo": "DDIM-InPO (Inversion Preference Optimization, Lu et al., CVPR 2025)",
    "dpo": "Diffusion-DPO (Wallace et al., 2024)",
    "sft": "supervised fine-tuning on the preferred images",
    "kto": "Diffusion-KTO (Li et al., 2024)",
    "smpo": "SmPO (Smoothed Preference Optimization, Lu et al., ICML 2025)",
}


TRAINING_KEYS = ("max_steps", "learning_rate", "pairs_per_device", "grad_accum", "mixed_precision", "seed")


def _load_snippet(cfg: Config) -> list[str]:
    lines = [
        "from diffusers import DiffusionPipeline",
        f'pipe = DiffusionPipeline.from_pretrained("{cfg.model.base}")',
    ]
    if cfg.model.lora.enabled:
        return [  # diffusers' layout; lora_kohya.safetensors beside it for kohya-ss / A1111 / ComfyUI
            *lines,
            'pipe.load_lora_weights("path/to/this/folder")  # pytorch_lora_weights.safetensors',
        ]
    from .models.families import DENOISER_CLASSES, family_spec

    spec = family_spec(cfg.model.family)
    cls = DENOISER_CLASSES[spec.denoiser]
    return [
        *lines,
        f"from diffusers import {cls}",
        f'pipe.{spec.denoiser} = {cls}.from_pretrained("path/to/this/folder")',
    ]


def training_start(cfg: Config) -> str:
    """Where ``method`` training started: the base, or the SFT stage's UNet."""
    from . import layout

    return f"the SFT stage's UNet ({layout.sft_weights(cfg)})" if cfg.sft.enabled else cfg.model.base


def evaluation_lines(cfg: Config, winrates: dict[str, Any] | None) -> list[str]:
    """The card's evaluation part: a pointer to the report, or (``winrates``: one method's part of
    ``winrates.json``, ``{prompt_set: {scorer: {...}}}``) the win-rate table itself."""
    if winrates is None:
        return [
            "- **Evaluation**: win-rates against the base with intervals are in the pipeline's report",
            "  (`outputs/report/cards/`, `report.md`, `winrates.json`) and in this model's MLflow run (`kind=model`).",
        ]
    sampler = f"{cfg.sample.scheduler}, {cfg.sample.steps} steps, guidance {cfg.sample.guidance}"
    lines = [
        "",
        f"## Evaluation against `{cfg.eval.baseline}`",
        "",
        f"Same prompts and seeds for both models, sampled with {sampler}; intervals at "
        f"{cfg.eval.confidence:g} ({cfg.eval.bootstrap_unit} bootstrap, {cfg.eval.bootstrap_samples} samples).",
        "",
        "| prompt set | scorer | win-rate | interval | mean gain | better than the baseline |",
        "|---|---|---|---|---|---|",
    ]
    for prompt_set, by_scorer in winrates.items():
        for scorer, w in by_scorer.items():
            lines.append(
                f"| {prompt_set} | {scorer} | {w['win_rate']:.3f} | [{w['win_low']:.3f}, {w['win_high']:.3f}] "
                f"| {w['mean_gain']:+.4g} | {'yes' if w['beats'] else 'no'} |"
            )
    return lines


def model_card(
    cfg: Config,
    method: str,
    start: str,
    summary: dict[str, Any] | None,
    winrates: dict[str, Any] | None = None,
) -> str:
    """The card's text for ``method``'s weights trained from ``start`` (``summary``: the train
    stage's ``summary.json``, None: pointed to; ``winrates``: see :func:`evaluation_lines`)."""
    front = {
        "base_model": cfg.model.base,
        "library_name": "diffusers",
        "tags": ["text-to-image", "diffusion", "preference-optimization", method, "inpo-toolkit"],
    }
    settings = to_dict(cfg)["method"].get(method, {})
    train = {k: v for k, v in to_dict(cfg)["train"].items() if k in TRAINING_KEYS}
    lora = " (a LoRA adapter)" if cfg.model.lora.enabled else ""
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        f"# {method} UNet{lora}, trained with the inpo toolkit",
        "",
        f"- **Method**: {METHOD_NAMES.get(method, method)}; settings `{json.dumps(settings)}`",
        f"- **Base model**: `{cfg.model.base}` (family `{cfg.model.family}`); training started from `{start}`",
        f"- **Data**: `{cfg.data.source}` (split `{cfg.data.split}`, ties dropped: {cfg.data.drop_ties})",
        f"- **Training**: `{json.dumps(train)}`; SFT of the reference first: {cfg.sft.enabled}",
        _summary_line(method, summary),
        *evaluation_lines(cfg, winrates),
        "",
        "Load it into the base pipeline:",
        "",
        "```python",
        *_load_snippet(cfg),
        "```",
        "",
    ]
    return "\n".join(lines)


def _summary_line(method: str, summary: dict[str, Any] | None) -> str:
    if summary is None:
        return f"- **Final training metrics**: `outputs/train/{method}/summary.json`"
    return f"- **Final training metrics**: `{json.dumps({k: v for k, v in summary.items() if k != 'method'})}`"


def write_model_card(
    weights_dir: Path, cfg: Config, method: str, start: str, summary: dict[str, Any]
) -> Path:
    return write_text_atomic(Path(weights_dir) / "README.md", model_card(cfg, method, start, summary))
