"""The model card written next to every trained UNet (``<weights>/README.md``, Hugging Face's format).

YAML front matter (``base_model``, ``library_name``, ``tags``) so the hub and its loaders recognise it,
then what the weights are: method and its settings, base and starting model, data, training length
and final metrics, and how to load them. Win-rates come later, from the evaluation stages: the card
points to the report (``report.md``, ``winrates.json``) and to the model's MLflow run.
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
    return [
        *lines,
        "from diffusers import UNet2DConditionModel",
        'pipe.unet = UNet2DConditionModel.from_pretrained("path/to/this/folder")',
    ]


def model_card(cfg: Config, method: str, start: str, summary: dict[str, Any]) -> str:
    """The card's text for ``method``'s weights trained from ``start`` (``summary``: the train
    stage's ``summary.json``)."""
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
        f"- **Final training metrics**: `{json.dumps({k: v for k, v in summary.items() if k != 'method'})}`",
        "- **Evaluation**: win-rates against the base with intervals are in the pipeline's report",
        "  (`outputs/report/report.md`, `winrates.json`) and in this model's MLflow run (`kind=model`).",
        "",
        "Load it into the base pipeline:",
        "",
        "```python",
        *_load_snippet(cfg),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_model_card(
    weights_dir: Path, cfg: Config, method: str, start: str, summary: dict[str, Any]
) -> Path:
    return write_text_atomic(Path(weights_dir) / "README.md", model_card(cfg, method, start, summary))
