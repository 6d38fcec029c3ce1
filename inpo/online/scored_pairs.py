"""Online rounds with AI feedback, in a world without a labeller of its own (world ``pickapic``, any
world of given data; :meth:`inpo.worlds.World.round_labellers` is empty): a round's pairs are the
current policy's samples for ``online.prompts``, judged by the relabelling scorers.

    meta = write_scored_round_pairs(cfg, policy, round_index=2, pairs_per_prompt=1, out="round-2/pairs")

- Prompts: ``online.prompts`` (a prompt set name or a one-prompt-per-line ``.txt`` file, as
  ``eval.prompt_sets``), each repeated ``pairs_per_prompt`` times.
- Images: the policy sampled with the evaluation sampler (``sample.steps``, ``sample.guidance``,
  ``sample.scheduler``, ``sample.height``); pair i of round k uses seeds
  ``ROUND_SEED_STRIDE·k + 2i`` and ``+ 2i + 1``, so no round shares noise with another, nor with the
  evaluation images (seeds below the stride).
- Labels: the same judges as ``inpo relabel`` (:func:`evaluation.relabel.judge_weights`): with the
  judged difference d, ``label_0 = 1, 0`` or ``½`` (``|d| ≤ relabel.tie_margin``), and
  ``soft_label_0 = sigmoid(d)`` when every judge has a ``relabel.tau``.
- Output: one shard ``<data.split>-00000-of-00001.parquet`` in Pick-a-Pic v2's shape (``caption, jpg_0,
  jpg_1, label_0, label_1``; PNG bytes) plus ``score_0, score_1`` (judged scores, as ``inpo relabel``
  writes them: ``Σ_k w_k s_k / τ_k``, or one judge's raw score without τ), ``seed_0, seed_1`` and ``soft_label_0``,
  with ``metadata.json``; written into a temporary folder and moved into place whole.
- Resuming: sampled in chunks of :data:`CHUNK_PAIRS` pairs (``<out>.partial/``, each written whole and
  keyed by :func:`chunk_key`), so a killed round samples only its missing chunks.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from evaluation.relabel import Judge
    from inpo.config import Config
    from inpo.models import Components

ROUND_SEED_STRIDE = 1_000_000


def round_seeds(round_index: int, n_pairs: int) -> list[tuple[int, int]]:
    """The two image seeds of each of a round's ``n_pairs`` pairs."""
    first = ROUND_SEED_STRIDE * round_index
    return [(first + 2 * i, first + 2 * i + 1) for i in range(n_pairs)]


def round_prompts(cfg: Config) -> list[str]:
    """``online.prompts``' texts (a prompt set name or a ``.txt`` file)."""
    from evaluation.prompts import load_prompt_set

    if cfg.online.prompts is None:
        raise ValueError("online.prompts: name the prompts the rounds sample (a prompt set or a .txt file)")
    return [p.text for p in load_prompt_set(cfg.online.prompts, cfg.eval.hpdv2_dir).prompts]


def check_scored_rounds(cfg: Config) -> None:
    """Refuse, before any work, scored-round settings that cannot run (an InputError naming the key)."""
    from evaluation.prompts import check_prompt_set
    from evaluation.relabel import judge_weights

    from ..errors import InputError
    from ..methods import METHODS

    o = cfg.online
    if o.prompts is None:
        raise InputError(
            f"online.prompts: world {cfg.world!r} has no prompts of its own to sample; name a prompt set "
            "(parti, hpdv2) or a one-prompt-per-line .txt file"
        )
    if o.prompts in cfg.eval.prompt_sets:
        raise InputError(
            f"online.prompts: {o.prompts!r} is also an evaluation prompt set (eval.prompt_sets); the rounds "
            "would train on the prompts they are judged on"
        )
    check_prompt_set(o.prompts, "online.prompts")
    if o.guard_scorer.startswith("oracle"):
        raise InputError(
            f"online.guard_scorer: {o.guard_scorer!r} judges the toy worlds' images only; world {cfg.world!r} "
            "needs a learned scorer (aesthetic, pickscore, hps, clip)"
        )
    untempered = [name for name in judge_weights(cfg) if name not in cfg.relabel.tau]
    if o.method in METHODS and "soft_label_w" in METHODS[o.method].pair_fields and untempered:
        raise InputError(
            f"relabel.tau: online.method {o.method!r} trains on smoothed labels, which need a temperature "
            f"for each labeller; none for {', '.join(untempered)}"
        )


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def pairs_per_batch(cfg: Config) -> int:
    """Pairs per sampling batch: ``sample.batch_size`` images, two per pair."""
    return max(1, cfg.sample.batch_size // 2)


@dataclass
class SampledRound:
    """A round's images (PNG bytes, pair i → 2i, 2i + 1), each judge's raw scores [2P], and seconds."""

    images: list[bytes] = field(default_factory=list)
    raw: list[list[np.ndarray]] = field(default_factory=list)
    sample_seconds: float = 0.0
    label_seconds: float = 0.0


def sample_and_score(
    cfg: Config,
    policy: Components,
    judges: Sequence[Judge],
    captions: list[str],
    seeds: list[tuple[int, int]],
    desc: str,
    progress: bool,
) -> SampledRound:
    """Sample both images of every pair with the evaluation sampler, batch by batch, and score each
    batch with every judge (the images are encoded once, never held decoded)."""
    import torch
    from tqdm.auto import tqdm

    from evaluation.generate import sampling_resolution
    from inpo.sampling import sample_images, to_pil

    out = SampledRound(raw=[[] for _ in judges])
    per_batch = pairs_per_batch(cfg)
    bar = tqdm(total=len(captions), desc=desc, disable=not progress, mininterval=2.0)
    for lo in range(0, len(captions), per_batch):
        prompts = [c for c in captions[lo : lo + per_batch] for _ in (0, 1)]
        flat_seeds = [s for pair in seeds[lo : lo + per_batch] for s in pair]
        began = time.perf_counter()
        with torch.no_grad():
            pixels = sample_images(
                policy,
                policy.unet,
                prompts,
                flat_seeds,
                steps=cfg.sample.steps,
                guidance=cfg.sample.guidance,
                scheduler=cfg.sample.scheduler,
                resolution=sampling_resolution(cfg.sample),
            )
        pil = to_pil(pixels)
        sampled = time.perf_counter()
        for judge, scores in zip(judges, out.raw):
            scores.append(np.asarray(judge.scorer.score(pil, prompts), dtype=np.float64))
        out.label_seconds += time.perf_counter() - sampled
        out.sample_seconds += sampled - began
        out.images += [_png(img) for img in pil]
        bar.update(len(prompts) // 2)
    bar.close()
    return out


CHUNK_PAIRS = 256  # pairs per resumable chunk: a killed round resamples at most this many


def chunk_key(cfg: Config, round_index: int, captions: list[str], judges: Sequence[Judge]) -> str:
    """What a round's sampled chunks depend on (prompts, seeds, sampler, policy, judges), hashed."""
    import hashlib

    from ..config import to_dict

    facts = {
        "round": round_index,
        "captions": captions,
        "sample": to_dict(cfg.sample),
        "model": to_dict(cfg.model),
        "judges": [j.scorer.info() for j in judges],
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def sample_in_chunks(
    cfg: Config,
    policy: Components,
    judges: Sequence[Judge],
    captions: list[str],
    seeds: list[tuple[int, int]],
    partial: Path,
    key: str,
    progress: bool,
) -> SampledRound:
    """:func:`sample_and_score` chunk by chunk, each chunk written whole to ``partial`` (with ``key``):
    a killed round resumes at its first missing chunk, and chunks of another key are discarded."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from inpo.io import atomic_file, write_text_atomic

    if partial.is_dir() and (partial / "key").is_file() and (partial / "key").read_text() != key:
        shutil.rmtree(partial)  # sampled under other settings: never reused
    partial.mkdir(parents=True, exist_ok=True)
    write_text_atomic(partial / "key", key)
    per_batch = pairs_per_batch(cfg)
    size = max(1, CHUNK_PAIRS // per_batch) * per_batch  # whole batches: the same batches as one pass
    out = SampledRound(raw=[[] for _ in judges])
    for lo in range(0, len(captions), size):
        path = partial / f"chunk-{lo:08d}.parquet"
        if path.is_file():
            table = pq.read_table(path)
        else:
            got = sample_and_score(
                cfg, policy, judges, captions[lo : lo + size], seeds[lo : lo + size], f"pairs {lo}+", progress
            )
            columns = {
                "image": got.images,
                **{f"judge_{i}": np.concatenate(r) for i, r in enumerate(got.raw)},
            }
            seconds = {b"sample_seconds": str(got.sample_seconds), b"label_seconds": str(got.label_seconds)}
            table = pa.Table.from_pydict(columns).replace_schema_metadata(seconds)
            with atomic_file(path) as tmp:
                pq.write_table(table, tmp)
        out.images += table["image"].to_pylist()
        for i, raw in enumerate(out.raw):
            raw.append(table[f"judge_{i}"].to_numpy())
        meta = table.schema.metadata
        out.sample_seconds += float(meta[b"sample_seconds"])
        out.label_seconds += float(meta[b"label_seconds"])
    return out


def write_scored_round_pairs(
    cfg: Config,
    policy: Components,
    round_index: int,
    pairs_per_prompt: int,
    out: str | Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Sample, judge and write round ``round_index``'s pairs into ``out``; returns its metadata."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from evaluation.relabel import (
        ai_labels,
        build_judges,
        judge_weights,
        judged_scores,
        shard_name,
        soft_labels,
    )
    from inpo.io import atomic_directory

    captions = [p for p in round_prompts(cfg) for _ in range(pairs_per_prompt)]
    seeds = round_seeds(round_index, len(captions))
    judges = build_judges(cfg, judge_weights(cfg), str(next(policy.unet.parameters()).device))
    partial = Path(out).with_name(Path(out).name + ".partial")
    key = chunk_key(cfg, round_index, captions, judges)
    done = sample_in_chunks(cfg, policy, judges, captions, seeds, partial, key, progress)
    judged = judged_scores(judges, [np.concatenate(r) for r in done.raw])
    s0, s1 = judged[0::2], judged[1::2]
    label_0 = ai_labels(s0, s1, cfg.relabel.tie_margin)
    columns: dict[str, Any] = {
        "caption": captions,
        "jpg_0": done.images[0::2],
        "jpg_1": done.images[1::2],
        "label_0": label_0,
        "label_1": 1.0 - label_0,
        "score_0": s0,
        "score_1": s1,
        "seed_0": [a for a, _ in seeds],
        "seed_1": [b for _, b in seeds],
    }
    if all(j.tau is not None for j in judges):
        columns["soft_label_0"] = soft_labels(s0 - s1)
    metadata = {
        "generator": "inpo online round (scored)",
        "world": cfg.world,
        "round": round_index,
        "prompts": cfg.online.prompts,
        "pairs": len(captions),
        "ties": int((label_0 == 0.5).sum()),
        "labellers": [
            {"name": j.scorer.name, "weight": j.weight, "tau": j.tau, "info": j.scorer.info()} for j in judges
        ],
        "labeller_mean": float(judged.mean()),
        "sampler": {
            "steps": cfg.sample.steps,
            "guidance": cfg.sample.guidance,
            "scheduler": cfg.sample.scheduler,
        },
        "sample_seconds": round(done.sample_seconds, 2),
        "label_seconds": round(done.label_seconds, 2),
    }
    with atomic_directory(out) as tmp:
        pq.write_table(pa.Table.from_pydict(columns), tmp / shard_name(0, 1, cfg.data.split))
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    shutil.rmtree(partial)
    return metadata
