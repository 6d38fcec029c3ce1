"""Online rounds in the toy worlds (:meth:`inpo.worlds.ToyWorld.make_round_pairs`): a round's pair set, the current policy's samples for the world's training prompts, labelled by the
world's labeller, in Pick-a-Pic v2's shape (the toy worlds' ``inpo world pairs`` layout).

Labellers, the same as each world's offline pairs (docs/online_rounds.md):
- ``toy`` / ``toy-flow``: the oracle, higher score wins, a gap below ``toy.pairs.tie_margin`` ties;
- ``toy-mixed``: the oracle's gap through the world's Bradley–Terry draw with the tie band and
  temperature calibrated on its offline pairs (read from their ``metadata.json``), so online labels
  are exactly as noisy as offline ones.
Each pair also carries ``soft_label_0``, SmPO's smoothed label from the same information the hard
label came from: ``sigmoid(Δ / T)`` with the world's Bradley–Terry temperature in ``toy-mixed`` (the
probability the noisy label was drawn with; ½ inside the tie band), ``sigmoid(Δ / relabel.tau.oracle)``
in ``toy`` / ``toy-flow`` (½ where the hard label ties).
Seeds: pair i of round k uses :func:`inpo.toyworld.pairs.pair_seeds` of run seed
``toy.seed + ROUND_SEED_STRIDE · k`` (no round shares noise with another or with the offline pairs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..io import atomic_directory

if TYPE_CHECKING:
    from ..config import Config
    from ..models import Components

ROUND_SEED_STRIDE = 1000
LABEL_STREAM = 7  # the round's Bradley–Terry draw: generator seed ROUND_SEED_STRIDE · run seed + this


def round_run_seed(cfg: Config, round_index: int) -> int:
    return cfg.toy.seed + ROUND_SEED_STRIDE * round_index


def offline_calibration(cfg: Config) -> tuple[float, float]:
    """(tie band, temperature) of world toy-mixed's offline labels, from its pairs' metadata."""
    from ..layout import world_pairs_dir

    meta_path = world_pairs_dir(cfg) / "metadata.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: toy-mixed's offline pairs first (`inpo world pairs`)")
    labels = json.loads(meta_path.read_text()).get("labels", {})
    if "tie_band" not in labels or "temperature" not in labels:
        raise ValueError(f"{meta_path}: no labels.tie_band / labels.temperature (not world toy-mixed's pairs?)")
    return float(labels["tie_band"]), float(labels["temperature"])


def world_labels(cfg: Config, scores: torch.Tensor, run_seed: int) -> torch.Tensor:
    """label_0 [P] float64 for oracle scores [P, 2] by the world's labeller (module docstring)."""
    from .mixed import draw_labels
    from .pairs import preference_labels

    if cfg.world == "toy-mixed":
        band, temperature = offline_calibration(cfg)
        generator = torch.Generator().manual_seed(ROUND_SEED_STRIDE * run_seed + LABEL_STREAM)
        return draw_labels((scores[:, 0] - scores[:, 1]).double(), band, temperature, generator)
    return preference_labels(scores[:, 0], scores[:, 1], cfg.toy.pairs.tie_margin).double()


def world_soft_labels(cfg: Config, scores: torch.Tensor, label_0: torch.Tensor) -> torch.Tensor:
    """soft_label_0 [P] float64 for oracle scores [P, 2] and the hard labels [P] (module docstring)."""
    delta = (scores[:, 0] - scores[:, 1]).double()
    if cfg.world == "toy-mixed":
        temperature = offline_calibration(cfg)[1]
    elif "oracle" in cfg.relabel.tau:
        temperature = cfg.relabel.tau["oracle"]
    else:
        raise ValueError("relabel.tau.oracle: the toy worlds' smoothed labels need the oracle's temperature")
    return torch.where(label_0 == 0.5, 0.5, torch.sigmoid(delta / temperature)).double()


def write_round_pairs(
    cfg: Config, policy: Components, round_index: int, pairs_per_prompt: int, out: str | Path, progress: bool = True
) -> dict[str, Any]:
    """Sample, label and write round ``round_index``'s pairs into ``out`` (atomically); its metadata."""
    import pyarrow.parquet as pq

    from .oracle import OracleScorer
    from .pairs import SHARD_NAME, assemble_table, pair_seeds, png_bytes, sample_pixels
    from .prompts import training_prompts

    run_seed = round_run_seed(cfg, round_index)
    captions = [p for p in training_prompts(cfg.toy) for _ in range(pairs_per_prompt)]
    seeds = [pair_seeds(run_seed, i) for i in range(len(captions))]
    flat = [c for c in captions for _ in range(2)]
    start = time.perf_counter()
    pixels = sample_pixels(policy, flat, [s for pair in seeds for s in pair], cfg.toy.pairs, progress)
    sampled = time.perf_counter()
    scores = OracleScorer().score(pixels.float() / 255.0, flat).view(-1, 2)
    label_0 = world_labels(cfg, scores, run_seed)
    soft = {"soft_label_0": world_soft_labels(cfg, scores, label_0).tolist()}
    labelled = time.perf_counter()
    images = [png_bytes(p) for p in pixels]
    table, corrupt_rows = assemble_table(
        captions, seeds, images, scores, label_0, run_seed, cfg.toy.pairs.corrupt, extra=soft
    )
    metadata = {
        "generator": "inpo online round",
        "world": cfg.world,
        "round": round_index,
        "run_seed": run_seed,
        "pairs": len(captions),
        "ties": int((label_0 == 0.5).sum()),
        "corrupt_rows": corrupt_rows,
        "labeller_mean": float(scores.mean()),  # the oracle's
        "sample_seconds": round(sampled - start, 2),
        "label_seconds": round(labelled - sampled, 2),
    }
    with atomic_directory(out) as tmp:
        pq.write_table(table, tmp / SHARD_NAME)
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata
