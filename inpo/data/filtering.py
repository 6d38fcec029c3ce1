"""``inpo prepare``'s library half: scan a pair source, drop unusable pairs, write the pair index.

Per row, in this order (the first reason that applies is the one counted):

1. labels are checked: each of ``label_0``/``label_1`` in {0, 0.5, 1} and their sum 1, else a
   :class:`PairDataError` naming the file and row stops the run (the data is not what it claims);
2. ``tie`` (``label_0 == 0.5``, when data.drop_ties) — decided without decoding the images;
3. ``caption_too_long`` (more than data.max_caption_chars characters);
4. ``corrupt_image``: either image missing or not fully decodable drops the whole pair, never one side;
5. ``duplicate`` (data.dedup): same caption, same winner bytes and same loser bytes as a kept pair.

Kept pairs are numbered in source order (shards sorted, rows ascending); data.max_pairs stops the
scan once that many are kept. Shards are scanned in-process, or by data.prepare_workers processes.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from ..config.sections import DataConfig
from ..io import write_json_atomic
from .images import CorruptImageError, decode_rgb, image_bytes, image_hash
from .index import write_pair_index
from .sources import REQUIRED_COLUMNS, PairDataError, PairSource, Shard, resolve_source

PAIRS_FILE = "pairs.parquet"
SUMMARY_FILE = "summary.json"
SOFT_LABEL_COLUMN = "soft_label_0"  # optional: image 0's smoothed preference in [0, 1] (`inpo relabel`)
DROP_REASONS = ("tie", "caption_too_long", "corrupt_image", "duplicate")
VALID_LABELS = (0.0, 0.5, 1.0)
SCAN_BATCH_ROWS = 64
MAX_EXAMPLES = 20


@dataclass(frozen=True)
class FilterRules:
    drop_ties: bool = True
    max_caption_chars: int | None = None


@dataclass(frozen=True)
class RowVerdict:
    """What the per-row checks decided for one source row (``reason`` None: keep)."""

    shard: str
    row: int
    caption: str
    label_0: float
    reason: str | None
    detail: str = ""
    hash_0: str | None = None
    hash_1: str | None = None
    soft_label_0: float | None = None  # a smoothed label (SmPO) when the source has the column


@dataclass
class PrepareSummary:
    """The JSON summary of one ``inpo prepare`` run: rows read = kept + sum(dropped)."""

    source: str
    kind: str
    split: str
    shards: int
    rows_read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {r: 0 for r in DROP_REASONS})
    ties_kept: int = 0
    stopped_at_max_pairs: bool = False
    corrupt_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_soft_label(where: str, value: Any) -> None:
    """Raise :class:`PairDataError` unless a smoothed label is a number in [0, 1]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise PairDataError(f"{where}: {SOFT_LABEL_COLUMN} = {value!r}; expected a number in [0, 1]")


def check_labels(where: str, label_0: Any, label_1: Any) -> None:
    """Raise :class:`PairDataError` unless both labels are in {0, 0.5, 1} and sum to 1."""
    values = []
    for name, value in (("label_0", label_0), ("label_1", label_1)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if number not in VALID_LABELS:
            raise PairDataError(
                f"{where}: {name} = {value!r}; expected one of 0, 0.5, 1 (a smoothed label in [0, 1] goes in "
                f"the {SOFT_LABEL_COLUMN} column, read by the methods that take soft labels)"
            )
        values.append(number)
    if values[0] + values[1] != 1.0:
        raise PairDataError(f"{where}: label_0 + label_1 = {values[0]} + {values[1]}; expected a sum of 1")


def judge_batch(
    source: PairSource, shard: str, first_row: int, batch: pa.RecordBatch, rules: FilterRules
) -> list[RowVerdict]:
    """Apply checks 1-4 to one record batch whose first row is ``first_row`` of ``shard``."""
    path = source.full_path(shard)
    cols = {name: batch.column(name) for name in REQUIRED_COLUMNS}
    captions, labels_0, labels_1 = (cols[c].to_pylist() for c in ("caption", "label_0", "label_1"))
    names = batch.schema.names
    soft = batch.column(SOFT_LABEL_COLUMN).to_pylist() if SOFT_LABEL_COLUMN in names else [None] * batch.num_rows
    out = []
    for i in range(batch.num_rows):
        row = first_row + i
        check_labels(f"{path}: row {row}", labels_0[i], labels_1[i])
        if SOFT_LABEL_COLUMN in names:
            check_soft_label(f"{path}: row {row}", soft[i])
        caption, label_0 = captions[i] or "", float(labels_0[i])
        if rules.drop_ties and label_0 == 0.5:
            out.append(RowVerdict(shard, row, caption, label_0, "tie"))
            continue
        if rules.max_caption_chars is not None and len(caption) > rules.max_caption_chars:
            out.append(RowVerdict(shard, row, caption, label_0, "caption_too_long"))
            continue
        images = [image_bytes(cols[c][i].as_py()) for c in ("jpg_0", "jpg_1")]
        problems = []
        for name, data in zip(("jpg_0", "jpg_1"), images):
            try:
                decode_rgb(data)
            except CorruptImageError as err:
                problems.append(f"{name}: {err}")
        if problems:
            verdict = RowVerdict(shard, row, caption, label_0, "corrupt_image", "; ".join(problems))
        else:
            assert images[0] is not None and images[1] is not None
            verdict = RowVerdict(
                shard, row, caption, label_0, None, "", image_hash(images[0]), image_hash(images[1]), soft[i]
            )
        out.append(verdict)
    return out


def scan_shard(source: PairSource, shard: str, rules: FilterRules) -> Iterator[list[RowVerdict]]:
    """Stream one shard's verdicts, one list per record batch."""
    opened = Shard(source, shard)
    first_row = 0
    extra = (SOFT_LABEL_COLUMN,) if opened.has_column(SOFT_LABEL_COLUMN) else ()
    for batch in opened.iter_batches(REQUIRED_COLUMNS + extra, SCAN_BATCH_ROWS):
        yield judge_batch(source, shard, first_row, batch, rules)
        first_row += batch.num_rows


def _scan_whole_shard(job: tuple[PairSource, str, FilterRules]) -> list[RowVerdict]:
    source, shard, rules = job
    return [v for batch in scan_shard(source, shard, rules) for v in batch]


class _Collector:
    """Applies the global rules (dedup, max_pairs) in source order and gathers the index columns."""

    def __init__(self, summary: PrepareSummary, dedup: bool, max_pairs: int | None) -> None:
        self.summary, self.dedup, self.max_pairs = summary, dedup, max_pairs
        self.seen: set[tuple[str, str, str]] = set()
        self.soft_labels: list[float | None] = []
        self.columns: dict[str, list[Any]] = {
            k: [] for k in ("shard", "row", "winner", "caption", "label_0", "hash_0", "hash_1")
        }

    @property
    def full(self) -> bool:
        return self.max_pairs is not None and self.summary.kept >= self.max_pairs

    def add(self, v: RowVerdict) -> None:
        s = self.summary
        s.rows_read += 1
        reason = v.reason
        winner = 1 if v.label_0 == 0.0 else 0
        if reason is None and self.dedup:
            assert v.hash_0 is not None and v.hash_1 is not None
            key = (v.caption, v.hash_0, v.hash_1) if winner == 0 else (v.caption, v.hash_1, v.hash_0)
            reason = "duplicate" if key in self.seen else None
            self.seen.add(key)
        if reason is not None:
            s.dropped[reason] += 1
            if reason == "corrupt_image" and len(s.corrupt_examples) < MAX_EXAMPLES:
                s.corrupt_examples.append(f"{v.shard} row {v.row}: {v.detail}")
            return
        s.kept += 1
        s.ties_kept += v.label_0 == 0.5
        values: dict[str, Any] = {"shard": v.shard, "row": v.row, "winner": winner, "caption": v.caption}
        values |= {"label_0": v.label_0, "hash_0": v.hash_0, "hash_1": v.hash_1}
        for name, value in values.items():
            self.columns[name].append(value)
        self.soft_labels.append(v.soft_label_0)


def _verdict_batches(source: PairSource, rules: FilterRules, workers: int) -> Iterator[list[RowVerdict]]:
    if workers <= 0:
        for shard in source.shards:
            yield from scan_shard(source, shard, rules)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_scan_whole_shard, [(source, shard, rules) for shard in source.shards])


def prepare_pairs(data_cfg: DataConfig, out_dir: str | Path, progress: bool = True) -> PrepareSummary:
    """Scan ``data_cfg.source``, write ``out_dir/pairs.parquet`` and ``out_dir/summary.json`` atomically."""
    out_dir = Path(out_dir)
    source = resolve_source(data_cfg.source, data_cfg.format, data_cfg.split)
    shard_rows = [Shard(source, shard).num_rows for shard in source.shards]  # fails fast on a bad shard
    summary = PrepareSummary(
        source=source.given, kind=source.kind, split=data_cfg.split, shards=len(source.shards)
    )
    collector = _Collector(summary, data_cfg.dedup, data_cfg.max_pairs)
    rules = FilterRules(data_cfg.drop_ties, data_cfg.max_caption_chars)
    batches: Iterable[list[RowVerdict]] = _verdict_batches(source, rules, data_cfg.prepare_workers)
    with tqdm(
        total=sum(shard_rows), unit="row", desc="inpo prepare", disable=not progress, mininterval=1.0
    ) as bar:
        for batch in batches:
            for verdict in batch:
                if collector.full:
                    summary.stopped_at_max_pairs = True
                    break
                collector.add(verdict)
            bar.update(len(batch))
            if summary.stopped_at_max_pairs:
                break
    if summary.kept == 0:
        raise PairDataError(
            f"data.source {source.given}: no pair survived the filter: {json.dumps(summary.dropped)}"
        )
    meta = {
        "source": source.given,
        "kind": source.kind,
        "split": data_cfg.split,
        "shards": [{"path": s, "rows": n} for s, n in zip(source.shards, shard_rows)],
    }
    soft = collector.soft_labels
    if any(v is not None for v in soft):
        if any(v is None for v in soft):
            raise PairDataError(
                f"data.source {source.given}: some shards have {SOFT_LABEL_COLUMN} and some do not; "
                "relabel the whole pair set (`inpo relabel`)"
            )
        collector.columns[SOFT_LABEL_COLUMN] = soft
    write_pair_index(out_dir / PAIRS_FILE, collector.columns, meta)
    write_json_atomic(out_dir / SUMMARY_FILE, summary.to_dict())
    return summary
