"""AI-feedback relabelling (InPO paper §5.3): a scorer, not the original annotators, picks each pair's winner.

    summary = relabel_pairs(pair_index, cfg.data, [Judge(scorer, 1.0, tau)], out_dir)   # then: inpo prepare data.source=out_dir

Reads the pairs of a pair index (``inpo prepare``'s output, so ties and corrupt pairs are already
gone) through :class:`inpo.data.PairDataset`, scores both images against the caption and writes a
new pair set in Pick-a-Pic v2's shape: ``caption, jpg_0, jpg_1, label_0, label_1`` (image bytes
copied unchanged, in their original order) plus ``score_0, score_1, original_label_0, pair_index``
for provenance, as ``train-XXXXX-of-YYYYY.parquet`` shards, written into a temporary folder and
moved into place whole.

Judges: one scorer, or a weighted mix of several (``relabel.scorers``), each with its temperature τ
(``relabel.tau``, in the scorer's units). The judged difference is ``d = Σ_k w_k (s_k0 − s_k1) / τ_k``
(one judge without τ: the raw difference ``s0 − s1``, no smoothed label). Label rule:
``label_0 = 1 if d > tie_margin, 0 if d < −tie_margin, ½ otherwise``; ``label_1 = 1 − label_0``;
``soft_label_0 = sigmoid(d)`` (SmPO's smoothed label) when every judge has a τ. ``score_0/score_1``
are the one judge's raw scores, or for a mix ``Σ_k w_k s_k / τ_k``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from inpo.config import Config
    from inpo.config.sections import DataConfig

@dataclass(frozen=True)
class Judge:
    """A scorer with its weight in the mix and its temperature τ (None: no smoothed label)."""

    scorer: Any
    weight: float = 1.0
    tau: float | None = None


def judge_weights(cfg: Config) -> dict[str, float]:
    """The labeller: ``relabel.scorers`` (name → weight), else the first of ``eval.scorers`` alone."""
    return dict(cfg.relabel.scorers) or {cfg.eval.scorers[0]: 1.0}


def build_judges(cfg: Config, weights: dict[str, float], device: str = "cpu") -> list[Judge]:
    """One :class:`Judge` per named scorer, with its ``relabel.tau`` temperature (if any)."""
    from evaluation.scorers import build_scorer

    return [Judge(build_scorer(n, cfg.eval, device=device), w, cfg.relabel.tau.get(n)) for n, w in weights.items()]


def judged_scores(judges: Sequence[Judge], scores: Sequence[np.ndarray]) -> np.ndarray:
    """Each image's judged score [N] from each judge's scores [N]: raw for one judge without τ,
    else ``Σ_k w_k s_k / τ_k`` (so a difference of judged scores is d)."""
    if len(judges) == 1 and judges[0].tau is None:
        return np.asarray(scores[0], dtype=np.float64)
    missing = [j.scorer.name for j in judges if j.tau is None]
    if missing:
        raise ValueError(f"relabel.tau: no temperature for {', '.join(missing)}; a mix of scorers needs one each")
    total = np.zeros(len(scores[0]), dtype=np.float64)
    for judge, s in zip(judges, scores):
        assert judge.tau is not None
        total += judge.weight * np.asarray(s, dtype=np.float64) / judge.tau
    return total


def soft_labels(d: np.ndarray) -> np.ndarray:
    """``sigmoid(d)`` [N] float64 for judged differences d [N] (SmPO's p for image 0)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(d, dtype=np.float64)))


RELABEL_SCHEMA = pa.schema(
    [
        ("caption", pa.string()),
        ("jpg_0", pa.binary()),
        ("jpg_1", pa.binary()),
        ("label_0", pa.float64()),
        ("label_1", pa.float64()),
        ("score_0", pa.float64()),
        ("score_1", pa.float64()),
        ("original_label_0", pa.float64()),
        ("pair_index", pa.int64()),
        ("soft_label_0", pa.float64()),
    ]
)
SUMMARY_FILE = "summary.json"


def ai_labels(score_0: np.ndarray, score_1: np.ndarray, tie_margin: float = 0.0) -> np.ndarray:
    """``label_0`` [N] from the two images' scores [N], [N]: 1, 0, or ½ when ``|d| <= tie_margin``."""
    if tie_margin < 0:
        raise ValueError(f"tie_margin must be >= 0, got {tie_margin}")
    d = np.asarray(score_0, dtype=np.float64) - np.asarray(score_1, dtype=np.float64)
    return np.where(d > tie_margin, 1.0, np.where(d < -tie_margin, 0.0, 0.5))


def shard_name(i: int, n: int, split: str = "train") -> str:
    """``train-00000-of-00003.parquet`` (the split-named layout ``inpo prepare`` selects by ``data.split``)."""
    return f"{split}-{i:05d}-of-{n:05d}.parquet"


def _original_labels(index_path: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    return pq.read_table(index_path, columns=["label_0"])["label_0"].to_numpy().astype(np.float64)


def relabel_pairs(
    index_path: str | Path,
    data_cfg: DataConfig,
    judges: Sequence[Judge],
    out_dir: str | Path,
    tie_margin: float = 0.0,
    batch_size: int = 64,
    rows_per_shard: int = 2048,
    progress: bool = True,
) -> dict[str, Any]:
    """Relabel every pair of the index with ``judges`` and write the new pair set into ``out_dir``.

    Returns the summary also written to ``out_dir/summary.json``: pair count, label counts, how
    many winners changed, and each judge's weight, τ and scorer ``info()``.
    """
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from inpo.data.dataset import PairDataset
    from inpo.data.images import decode_rgb
    from inpo.io import atomic_directory

    if not judges:
        raise ValueError("relabel_pairs: no scorer to judge the pairs with")
    smoothed = all(j.tau is not None for j in judges)
    schema = RELABEL_SCHEMA if smoothed else RELABEL_SCHEMA.remove(RELABEL_SCHEMA.get_field_index("soft_label_0"))
    name = "+".join(j.scorer.name for j in judges)
    if batch_size < 1 or rows_per_shard < 1:
        raise ValueError(f"batch_size ({batch_size}) and rows_per_shard ({rows_per_shard}) must be >= 1")
    index_path = Path(index_path)
    dataset = PairDataset(index_path, data_cfg, seed=0)
    index = dataset.index
    original = _original_labels(index_path)
    n_pairs = len(index)
    if n_pairs == 0:
        raise ValueError(f"{index_path}: the pair index holds no pairs")
    n_shards = math.ceil(n_pairs / rows_per_shard)
    labels = np.zeros(n_pairs)
    bar = tqdm(total=n_pairs, desc=f"relabel ({name})", disable=not progress, mininterval=2.0)
    with atomic_directory(out_dir) as tmp:
        for s in range(n_shards):
            lo, hi = s * rows_per_shard, min((s + 1) * rows_per_shard, n_pairs)
            with pq.ParquetWriter(tmp / shard_name(s, n_shards), schema) as writer:
                for start in range(lo, hi, batch_size):
                    ids = list(range(start, min(start + batch_size, hi)))
                    pairs = dataset.encoded_pairs(ids)  # (winner, loser) → back to (jpg_0, jpg_1)
                    jpg = [
                        (lose, win) if index.winner[i] == 1 else (win, lose)
                        for i, (win, lose) in zip(ids, pairs)
                    ]
                    captions = [index.captions[i] for i in ids]
                    images = [decode_rgb(b) for pair in jpg for b in pair]
                    prompts = [c for c in captions for _ in (0, 1)]
                    raw = [np.asarray(j.scorer.score(images, prompts), dtype=np.float64) for j in judges]
                    scores = judged_scores(judges, raw)
                    s0, s1 = scores[0::2], scores[1::2]
                    label_0 = ai_labels(s0, s1, tie_margin)
                    labels[ids] = label_0
                    batch = {
                        "caption": captions,
                        "jpg_0": [p[0] for p in jpg],
                        "jpg_1": [p[1] for p in jpg],
                        "label_0": label_0,
                        "label_1": 1.0 - label_0,
                        "score_0": s0,
                        "score_1": s1,
                        "original_label_0": original[ids],
                        "pair_index": ids,
                    }
                    if smoothed:
                        batch["soft_label_0"] = soft_labels(s0 - s1)
                    writer.write_table(pa.Table.from_pydict(batch, schema=schema))
                    bar.update(len(ids))
        decided = (labels != 0.5) & (original != 0.5)
        summary = {
            "source_index": str(index_path),
            "source": index.source,
            "pairs": n_pairs,
            "shards": n_shards,
            "tie_margin": tie_margin,
            "label_0_counts": {str(v): int((labels == v).sum()) for v in (1.0, 0.0, 0.5)},
            "winner_changed": int((decided & (labels != original)).sum()),
            "agreement_with_original": float((labels[decided] == original[decided]).mean())
            if decided.any()
            else None,
            "scorer": judges[0].scorer.info() if len(judges) == 1 else {"name": name},
            "judges": [{"weight": j.weight, "tau": j.tau, "scorer": j.scorer.info()} for j in judges],
            "soft_labels": smoothed,
        }
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=str) + "\n")
    bar.close()
    return summary
