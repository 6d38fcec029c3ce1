"""World ``toy-mixed``'s pairs: images from several generators, labelled like people label.

Pick-a-Pic's pairs come from several models (many stronger than the one being tuned) and its labels
are noisy. Here each side of a pair is drawn uniformly and independently from ``toy.mixed.generators``:

- ``weak``: the weak base (``toy.mixed.base_out``: the shipped recipe on flawed renders);
- ``strong``: world ``toy``'s shipped base (``toy.base.out``);
- ``renders``: the prompt's scene with one flat imperfection (:func:`.flaws.imperfect_renders`).

Models sample with DDIM (eta 0) at ``toy.pairs.steps`` / ``toy.pairs.guidance``, each image from its
own seed (:func:`.pairs.pair_seeds`). The oracle scores the stored pixels; with ``Δ = oracle_0 − oracle_1``:

- **noiseless label**: 1 if Δ > 0, 0 if Δ < 0, 0.5 if equal (kept as provenance, never trained on);
- **tie band** ``b``: the ``tie_rate`` quantile of ``|Δ|``; a pair with ``|Δ| < b`` is a tie (0.5);
- **Bradley–Terry draw** otherwise: ``label_0 = 1`` with probability ``σ(Δ / τ)``, the temperature τ
  set so that the expected agreement with the noiseless label, mean of ``σ(|Δ| / τ)`` over non-ties,
  is ``agreement``.

Band and temperature come from the noiseless statistics alone (:func:`calibrate_labels`), before any
training. Provenance columns: ``generator_0/1``, ``oracle_0/1``, ``label_noiseless``, ``seed_0/1``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..io import atomic_directory
from ..sampling import to_uint8
from .flaws import imperfect_renders
from .model import load_model
from .oracle import OracleScorer
from .pairs import SEED_STRIDE, SHARD_NAME, assemble_table, pair_seeds, png_bytes, sample_pixels
from .prompts import training_prompts

if TYPE_CHECKING:
    from ..config import Config

GENERATOR_STREAM = 1  # seeds of the generator choice, the renders and the label draw: apart
RENDER_STREAM = 2
LABEL_STREAM = 3


def noiseless_labels(delta: torch.Tensor) -> torch.Tensor:
    """delta [N] (oracle_0 − oracle_1) → [N] float64: 1 where > 0, 0 where < 0, 0.5 where equal."""
    return torch.where(delta > 0, 1.0, torch.where(delta < 0, 0.0, 0.5)).double()


def calibrate_labels(delta: torch.Tensor, tie_rate: float, agreement: float) -> tuple[float, float]:
    """delta [N] → (tie band b, temperature τ): ``b`` the ``tie_rate`` quantile of |Δ|; τ solves
    ``mean(σ(|Δ| / τ) over |Δ| ≥ b) = agreement`` (bisection on log τ; the mean falls as τ grows)."""
    gap = delta.abs().double()
    band = float(torch.quantile(gap, tie_rate)) if tie_rate > 0 else 0.0
    kept = gap[gap >= band] if tie_rate > 0 else gap
    kept = kept[kept > 0]
    if len(kept) == 0:
        raise ValueError("toy-mixed labels: every pair is a tie; no temperature can be set")
    lo, hi = -20.0, 5.0  # log τ
    for _ in range(100):
        mid = (lo + hi) / 2
        if float(torch.sigmoid(kept / torch.exp(torch.tensor(mid))).mean()) > agreement:
            lo = mid
        else:
            hi = mid
    return band, float(torch.exp(torch.tensor((lo + hi) / 2)))


def draw_labels(
    delta: torch.Tensor, band: float, temperature: float, generator: torch.Generator
) -> torch.Tensor:
    """delta [N] → label_0 [N] float64: 0.5 where |Δ| < band, else 1 with probability σ(Δ / τ), else 0."""
    u = torch.rand(len(delta), generator=generator, dtype=torch.float64)
    label = (u < torch.sigmoid(delta.double() / temperature)).double()
    return torch.where(delta.abs() < band, 0.5, label).double()


def sample_sides(
    cfg: Config, prompts: list[str], seeds: list[int], kinds: list[str], progress: bool
) -> tuple[torch.Tensor, list[str]]:
    """Every image of the pairs from its generator → [N, 3, H, W] uint8 and the render imperfections
    (``""`` for model samples)."""
    toy, pairs = cfg.toy, cfg.toy.pairs
    out = torch.zeros(len(prompts), 3, toy.resolution, toy.resolution, dtype=torch.uint8)
    detail = [""] * len(prompts)
    for kind, folder in (("weak", toy.mixed.base_out), ("strong", toy.base.out)):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        if rows:
            pick = [prompts[i] for i in rows], [seeds[i] for i in rows]
            out[rows] = sample_pixels(load_model(folder), *pick, pairs, progress)
    rows = [i for i, k in enumerate(kinds) if k == "renders"]
    if rows:
        gen = torch.Generator().manual_seed(SEED_STRIDE * RENDER_STREAM + toy.seed)
        images, imperfections = imperfect_renders(
            [prompts[i] for i in rows], toy.resolution, toy.mixed.render_colour_shift, gen
        )
        out[rows] = to_uint8(images * 2 - 1)
        for i, name in zip(rows, imperfections):
            detail[i] = name
    return out, detail


def label_statistics(delta: torch.Tensor, label_0: torch.Tensor, noiseless: torch.Tensor) -> dict[str, float]:
    """Ties and agreement of the drawn labels with the noiseless ones (over non-tie rows, and over all)."""
    kept = label_0 != 0.5
    return {
        "tie_rate": float((~kept).double().mean()),
        "agreement": float((label_0[kept] == noiseless[kept]).double().mean())
        if kept.any()
        else float("nan"),
        "agreement_all_rows": float((label_0 == noiseless).double().mean()),
        "mean_abs_oracle_gap": float(delta.abs().mean()),
    }


def build_mixed_table(cfg: Config, progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """Draw generators, sample, judge, label and assemble every pair → (parquet table, statistics)."""
    toy, mixed = cfg.toy, cfg.toy.mixed
    prompts = training_prompts(toy)
    captions = [p for p in prompts for _ in range(toy.pairs.pairs_per_prompt)]
    seeds = [pair_seeds(toy.seed, i) for i in range(len(captions))]
    choose = torch.Generator().manual_seed(SEED_STRIDE * GENERATOR_STREAM + toy.seed)
    picks = torch.randint(len(mixed.generators), (2 * len(captions),), generator=choose).tolist()
    kinds = [mixed.generators[i] for i in picks]
    flat_prompts = [c for c in captions for _ in range(2)]
    start = time.perf_counter()
    pixels, imperfection = sample_sides(
        cfg, flat_prompts, [s for pair in seeds for s in pair], kinds, progress
    )
    sample_seconds = time.perf_counter() - start
    scores = OracleScorer().score(pixels.float() / 255.0, flat_prompts).view(-1, 2)
    delta = (scores[:, 0] - scores[:, 1]).double()
    band, temperature = calibrate_labels(delta, mixed.tie_rate, mixed.agreement)
    noiseless = noiseless_labels(delta)
    label_0 = draw_labels(
        delta, band, temperature, torch.Generator().manual_seed(SEED_STRIDE * LABEL_STREAM + toy.seed)
    )
    extra = {
        "generator_0": kinds[0::2],
        "generator_1": kinds[1::2],
        "imperfection_0": imperfection[0::2],
        "imperfection_1": imperfection[1::2],
        "label_noiseless": noiseless.tolist(),
    }
    images = [png_bytes(p) for p in pixels]
    table, corrupt_rows = assemble_table(
        captions, seeds, images, scores, label_0, toy.seed, toy.pairs.corrupt, extra
    )
    stats = {
        "pairs": len(captions),
        "prompts": len(prompts),
        "labels": {
            "tie_band": band,
            "temperature": temperature,
            **label_statistics(delta, label_0, noiseless),
        },
        "generators": generator_statistics(kinds, scores, noiseless),
        "corrupt_rows": corrupt_rows,
        "oracle_mean": float(scores.mean()),
        "sample_seconds": round(sample_seconds, 1),
    }
    return table, stats


def generator_statistics(kinds: list[str], scores: torch.Tensor, noiseless: torch.Tensor) -> dict[str, Any]:
    """Per generator: images, mean oracle score, and how often its image is the noiseless winner."""
    flat = scores.flatten()
    wins = torch.stack([noiseless, 1 - noiseless], 1).flatten()  # 1 where that side wins, 0.5 on ties
    out: dict[str, Any] = {}
    for kind in dict.fromkeys(kinds):
        rows = torch.tensor([k == kind for k in kinds])
        out[kind] = {
            "images": int(rows.sum()),
            "oracle_mean": float(flat[rows].mean()),
            "noiseless_win_rate": float(wins[rows].mean()),
        }
    return out


def generate_mixed_pairs(cfg: Config, out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Write ``out/train-00000-of-00001.parquet`` and ``out/metadata.json`` atomically; return the metadata."""
    import pyarrow.parquet as pq

    from ..threads import torch_threads

    start = time.perf_counter()
    with torch_threads(cfg.runtime.cpu_threads):
        table, stats = build_mixed_table(cfg, progress)
    metadata = {
        "generator": "inpo toy-mixed pairs",
        "world": "toy-mixed",
        "seed": cfg.toy.seed,
        "settings": {"pairs": asdict(cfg.toy.pairs), "mixed": asdict(cfg.toy.mixed)},
        "bases": {"weak": _base_record(cfg.toy.mixed.base_out), "strong": _base_record(cfg.toy.base.out)},
        **stats,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    with atomic_directory(out) as tmp:
        pq.write_table(table, tmp / SHARD_NAME)
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def _base_record(folder: str) -> dict[str, Any]:
    meta = Path(folder) / "metadata.json"
    record = json.loads(meta.read_text()) if meta.exists() else {}
    return {"path": str(folder), "seed": record.get("seed"), "recipe": record.get("recipe")}
