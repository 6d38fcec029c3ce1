"""Preference pairs of the toy world, in Pick-a-Pic v2's shape, labelled by the oracle.

For every training prompt, ``pairs_per_prompt`` pairs of base samples (DDIM, eta 0, CFG) with
seeds ``SEED_STRIDE · (toy.seed + 1) + 2 · pair + side``. The oracle scores both stored images (the
PNG pixels, exactly); the higher score wins (``label_0 = 1`` when ``jpg_0`` wins), and a difference
below ``tie_margin`` is a tie (``label_0 = label_1 = 0.5``). Rows are shuffled, then ``corrupt``
rows get one image replaced by garbage bytes (a PNG signature and noise), as real scraped data has.

Columns: ``caption, jpg_0, jpg_1, label_0, label_1`` (Pick-a-Pic v2) plus ``oracle_0, oracle_1,
seed_0, seed_1`` for provenance; the corrupt rows are listed only in ``metadata.json``.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from ..io import atomic_directory
from ..sampling import to_uint8
from .model import load_model
from .oracle import OracleScorer
from .prompts import training_prompts
from .sampling import sample_toy

if TYPE_CHECKING:
    import pyarrow as pa

    from ..config import Config
    from ..config.sections import ToyPairsConfig
    from ..models import Components

SEED_STRIDE = 1_000_000
SHARD_NAME = "train-00000-of-00001.parquet"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pair_seeds(run_seed: int, pair_index: int) -> tuple[int, int]:
    """The two image seeds of one pair."""
    first = SEED_STRIDE * (run_seed + 1) + 2 * pair_index
    return first, first + 1


def preference_labels(score_0: torch.Tensor, score_1: torch.Tensor, tie_margin: float) -> torch.Tensor:
    """score_0, score_1 [N] → label_0 [N]: 1 if image 0 scores higher by at least ``tie_margin``, 0 if
    image 1 does, 0.5 otherwise (a tie; equal scores are always a tie)."""
    delta = score_0 - score_1
    label = torch.full_like(delta, 0.5, dtype=torch.float64)
    label[(delta > 0) & (delta >= tie_margin)] = 1.0
    label[(delta < 0) & (-delta >= tie_margin)] = 0.0
    return label


def png_bytes(pixels: torch.Tensor) -> bytes:
    """[3, H, W] uint8 → PNG file bytes."""
    buf = io.BytesIO()
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    return buf.getvalue()


def garbage_bytes(generator: torch.Generator, length: int = 64) -> bytes:
    """A PNG signature followed by random bytes: looks like an image, decodes to an error."""
    return PNG_SIGNATURE + bytes(
        torch.randint(0, 256, (length,), generator=generator, dtype=torch.uint8).tolist()
    )


def sample_pixels(
    model: Components, prompts: list[str], seeds: list[int], cfg: ToyPairsConfig, progress: bool
) -> torch.Tensor:
    """Base samples → [N, 3, H, W] uint8 (the pixels that get stored)."""
    from tqdm.auto import tqdm

    out = []
    for start in tqdm(range(0, len(prompts), cfg.batch_size), desc="toy pairs", disable=not progress):
        chunk = slice(start, start + cfg.batch_size)
        images = sample_toy(model, prompts[chunk], seeds[chunk], cfg.steps, cfg.guidance, cfg.batch_size)
        out.append(to_uint8(images))
    return torch.cat(out)


def assemble_table(
    captions: list[str],
    seeds: list[tuple[int, int]],
    images: list[bytes],
    scores: torch.Tensor,
    label_0: torch.Tensor,
    run_seed: int,
    corrupt: int,
    extra: dict[str, list[Any]] | None = None,
) -> tuple[pa.Table, list[int]]:
    """Pairs in a seeded random row order, ``corrupt`` of them with one image replaced by garbage.

    images: 2 per pair (pair i → images 2i, 2i + 1); scores [P, 2]; label_0 [P]; ``extra``: more
    provenance columns, one value per pair (in pair order). Returns the table and the (sorted) row
    numbers of the corrupt rows.
    """
    import pyarrow as pa

    gen = torch.Generator().manual_seed(run_seed)
    order = torch.randperm(len(captions), generator=gen).tolist()
    jpg = [[images[2 * i + side] for i in order] for side in (0, 1)]
    corrupt_rows = sorted(torch.randperm(len(order), generator=gen)[:corrupt].tolist())
    for row in corrupt_rows:
        jpg[int(torch.randint(2, (1,), generator=gen))][row] = garbage_bytes(gen)
    table = pa.table(
        {
            "caption": pa.array([captions[i] for i in order], pa.string()),
            "jpg_0": pa.array(jpg[0], pa.binary()),
            "jpg_1": pa.array(jpg[1], pa.binary()),
            "label_0": pa.array([float(label_0[i]) for i in order], pa.float64()),
            "label_1": pa.array([1.0 - float(label_0[i]) for i in order], pa.float64()),
            "oracle_0": pa.array([float(scores[i, 0]) for i in order], pa.float32()),
            "oracle_1": pa.array([float(scores[i, 1]) for i in order], pa.float32()),
            "seed_0": pa.array([seeds[i][0] for i in order], pa.int64()),
            "seed_1": pa.array([seeds[i][1] for i in order], pa.int64()),
            **{name: pa.array([values[i] for i in order]) for name, values in (extra or {}).items()},
        }
    )
    return table, corrupt_rows


def build_table(cfg: Config, model: Components, progress: bool = True) -> tuple[pa.Table, dict[str, Any]]:
    """Sample, judge and assemble every pair → (parquet table, statistics)."""
    toy, pairs = cfg.toy, cfg.toy.pairs
    prompts = training_prompts(toy)
    captions = [p for p in prompts for _ in range(pairs.pairs_per_prompt)]
    seeds = [pair_seeds(toy.seed, i) for i in range(len(captions))]
    flat_prompts = [c for c in captions for _ in range(2)]
    start = time.perf_counter()
    pixels = sample_pixels(model, flat_prompts, [s for pair in seeds for s in pair], pairs, progress)
    sample_seconds = time.perf_counter() - start
    scores = OracleScorer().score(pixels.float() / 255.0, flat_prompts).view(-1, 2)  # the stored pixels
    label_0 = preference_labels(scores[:, 0], scores[:, 1], pairs.tie_margin)
    images = [png_bytes(p) for p in pixels]
    table, corrupt_rows = assemble_table(captions, seeds, images, scores, label_0, toy.seed, pairs.corrupt)
    ties = int((label_0 == 0.5).sum())
    stats = {
        "pairs": len(captions),
        "prompts": len(prompts),
        "ties": ties,
        "tie_rate": ties / len(captions),
        "corrupt_rows": corrupt_rows,
        "oracle_mean": float(scores.mean()),
        "mean_abs_oracle_gap": float((scores[:, 0] - scores[:, 1]).abs().mean()),
        "sample_seconds": round(sample_seconds, 1),
    }
    return table, stats


def generate_pairs(
    cfg: Config, base_dir: str | Path, out: str | Path, progress: bool = True
) -> dict[str, Any]:
    """Write ``out/train-00000-of-00001.parquet`` and ``out/metadata.json`` atomically; return the metadata."""
    import pyarrow.parquet as pq

    from ..threads import torch_threads

    start = time.perf_counter()
    with torch_threads(cfg.runtime.cpu_threads):
        model = load_model(base_dir)
        table, stats = build_table(cfg, model, progress)
    base_meta = Path(base_dir) / "metadata.json"
    metadata = {
        "generator": "inpo toy pairs",
        "world": cfg.world,  # toy, or toy-flow (the same generator on its flow base)
        "seed": cfg.toy.seed,
        "settings": asdict(cfg.toy.pairs),
        "base": {
            "path": str(base_dir),
            "seed": json.loads(base_meta.read_text()).get("seed") if base_meta.exists() else None,
        },
        **stats,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    with atomic_directory(out) as tmp:
        pq.write_table(table, tmp / SHARD_NAME)
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata
