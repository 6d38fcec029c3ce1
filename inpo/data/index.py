"""The pair index: the compact, validated product of ``inpo prepare``. Images are never copied.

One parquet row per kept pair, in pair-index order::

    pair_index int64   0..N-1, the global index every per-pair random stream is keyed by
    shard      string  the shard's path relative to the source root (as in ``PairSource.shards``)
    row        int64   the row inside that shard (0-based)
    winner     int8    0: jpg_0 is the winner, 1: jpg_1 is (a kept tie, data.drop_ties=false, has 0)
    caption    string  the caption as stored (before any dropout)
    label_0    float32 the stored label_0
    hash_0     string  BLAKE2b-128 of jpg_0's bytes (hash_1: of jpg_1's)
    soft_label_0 float32  optional: image 0's smoothed preference in [0, 1] (a relabelled source's)

The schema metadata ``inpo.pairs`` (JSON) records the source, its kind, the split and each shard's
row count, so a loader can tell when a shard changed since the index was written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..io import write_parquet_atomic
from .sources import PairDataError

INDEX_VERSION = 1
SOFT_LABEL = "soft_label_0"
INDEX_SCHEMA = pa.schema(
    [
        ("pair_index", pa.int64()),
        ("shard", pa.string()),
        ("row", pa.int64()),
        ("winner", pa.int8()),
        ("caption", pa.string()),
        ("label_0", pa.float32()),
        ("hash_0", pa.string()),
        ("hash_1", pa.string()),
    ]
)


@dataclass(frozen=True)
class PairIndex:
    """A validated pair index in memory: per-pair arrays plus the source it points into."""

    path: Path
    source: str
    kind: str
    split: str
    shards: tuple[str, ...]
    shard_rows: tuple[int, ...]
    shard_id: np.ndarray  # [N] int32, position in ``shards``
    row: np.ndarray  # [N] int64
    winner: np.ndarray  # [N] int8
    captions: list[str]
    label_0: np.ndarray  # [N] float32: the source's preference for image 0 (1, 0; 0.5 a tie)
    hashes: tuple[list[str], list[str]] = ([], [])  # BLAKE2b-128 of jpg_0's / jpg_1's bytes, per pair
    soft_label_0: np.ndarray | None = None  # [N] float32 in [0, 1], or None: the source has none

    def require_source(self, source: str, split: str) -> None:
        """Refuse ``data.source`` / ``data.split`` other than the ones the index was built from."""
        if str(source) != self.source or split != self.split:
            raise PairDataError(
                f"{self.path}: built by `inpo prepare` from data.source {self.source!r} (split "
                f"{self.split!r}), but data.source is {str(source)!r} (split {split!r}); "
                "re-run `inpo prepare`"
            )

    def __len__(self) -> int:
        return len(self.row)


def write_pair_index(path: Path, columns: dict[str, list[Any]], meta: dict[str, Any]) -> None:
    """Write ``columns`` (INDEX_SCHEMA's names minus pair_index) and ``meta`` atomically to ``path``."""
    n = len(columns["row"])
    data = {"pair_index": list(range(n)), **columns}
    schema = INDEX_SCHEMA
    if SOFT_LABEL in columns:
        schema = schema.append(pa.field(SOFT_LABEL, pa.float32()))
    table = pa.Table.from_pydict(data, schema=schema)
    meta = {"version": INDEX_VERSION, **meta}
    table = table.replace_schema_metadata({"inpo.pairs": json.dumps(meta)})
    write_parquet_atomic(path, table)


def read_pair_index(path: str | Path) -> PairIndex:
    """Read and validate a pair index; every inconsistency is an error naming the file and pair."""
    path = Path(path)
    if not path.is_file():
        raise PairDataError(f"{path}: pair index not found; run `inpo prepare` first")
    table = pq.read_table(path)
    raw_meta = (table.schema.metadata or {}).get(b"inpo.pairs")
    if raw_meta is None:
        raise PairDataError(f"{path}: not a pair index written by `inpo prepare` (no inpo.pairs metadata)")
    meta = json.loads(raw_meta)
    if meta.get("version") != INDEX_VERSION:
        raise PairDataError(f"{path}: index version {meta.get('version')}; expected {INDEX_VERSION}")
    for name in INDEX_SCHEMA.names:
        if name not in table.column_names:
            raise PairDataError(f"{path}: missing column {name}; expected {', '.join(INDEX_SCHEMA.names)}")
    shards = tuple(s["path"] for s in meta["shards"])
    shard_rows = tuple(int(s["rows"]) for s in meta["shards"])
    pair_index = table["pair_index"].to_numpy()
    bad = np.nonzero(pair_index != np.arange(len(pair_index)))[0]
    if len(bad):
        raise PairDataError(f"{path}: row {bad[0]}: pair_index {pair_index[bad[0]]}; expected {bad[0]}")
    winner = table["winner"].to_numpy().astype(np.int8)
    bad = np.nonzero((winner != 0) & (winner != 1))[0]
    if len(bad):
        raise PairDataError(f"{path}: pair {bad[0]}: winner {winner[bad[0]]}; expected 0 or 1")
    position = {name: i for i, name in enumerate(shards)}
    shard_names = table["shard"].to_pylist()
    unknown = [i for i, s in enumerate(shard_names) if s not in position]
    if unknown:
        raise PairDataError(
            f"{path}: pair {unknown[0]}: shard {shard_names[unknown[0]]!r} is not in its metadata"
        )
    shard_id = np.fromiter((position[s] for s in shard_names), dtype=np.int32, count=len(shard_names))
    row = table["row"].to_numpy().astype(np.int64)
    limit = np.asarray(shard_rows, dtype=np.int64)[shard_id] if len(shard_id) else np.zeros(0, np.int64)
    bad = np.nonzero((row < 0) | (row >= limit))[0]
    if len(bad):
        i = bad[0]
        raise PairDataError(
            f"{path}: pair {i}: row {row[i]} outside shard {shard_names[i]!r} ({limit[i]} rows)"
        )
    return PairIndex(
        path=path,
        source=str(meta["source"]),
        kind=str(meta["kind"]),
        split=str(meta["split"]),
        shards=shards,
        shard_rows=shard_rows,
        shard_id=shard_id,
        row=row,
        winner=winner,
        captions=[c or "" for c in table["caption"].to_pylist()],
        label_0=table["label_0"].to_numpy().astype(np.float32),
        hashes=(table["hash_0"].to_pylist(), table["hash_1"].to_pylist()),
        soft_label_0=table[SOFT_LABEL].to_numpy().astype(np.float32) if SOFT_LABEL in table.column_names else None,
    )
