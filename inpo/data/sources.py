"""Where Pick-a-Pic-shaped pairs live, and reading them without loading a source whole.

Three kinds of source, one interface (a root plus shard paths relative to it):

- ``parquet``: one ``.parquet`` file, or a folder searched recursively for ``*.parquet``. Files are
  read record batch by record batch (one row group in memory at a time).
- ``disk``: a ``datasets`` ``save_to_disk`` folder (``state.json`` + ``.arrow`` files; a
  ``DatasetDict`` folder picks ``data.split``). The Arrow files are memory-mapped, never copied.
- ``hub``: a hub dataset id whose files are parquet (Pick-a-Pic v2 and its mirrors), read over
  ``huggingface_hub.HfFileSystem`` with the same parquet reader. Needs a reachable hub.

Where a folder holds several splits (``train-00000-of-00645.parquet``, ``test-...``, or ``train/``
sub-folders), only ``data.split``'s files are used; a folder with no split-named files is used whole.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError

REQUIRED_COLUMNS = ("caption", "jpg_0", "jpg_1", "label_0", "label_1")
IMAGE_COLUMNS = ("jpg_0", "jpg_1")
SourceKind = Literal["parquet", "disk", "hub"]
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class PairDataError(InputError):
    """Pair data that cannot be used as it is: the message names the file (and row) at fault."""


@dataclass(frozen=True)
class PairSource:
    """A resolved ``data.source``: ``kind``, a ``root``, and shard paths relative to it in reading order."""

    kind: SourceKind
    root: str  # a local folder, or "datasets/<id>" on the hub filesystem
    shards: tuple[str, ...]
    given: str  # data.source as written in the config

    def full_path(self, shard: str) -> str:
        return f"{self.root}/{shard}" if self.kind == "hub" else str(Path(self.root) / shard)

    def filesystem(self) -> Any:
        if self.kind != "hub":
            return None
        from huggingface_hub import HfFileSystem

        return HfFileSystem()


def resolve_source(
    source: str, fmt: str = "auto", split: str = "train", list_shards: bool = True
) -> PairSource:
    """Resolve ``data.source``/``data.format``/``data.split``; ``list_shards=False`` skips the listing."""
    path = Path(source)
    kind = fmt if fmt != "auto" else _detect_kind(source)
    if kind == "hub":
        root = f"datasets/{source}"
        shards = _hub_shards(root, split) if list_shards else ()
        return PairSource("hub", root, shards, source)
    if not path.exists():
        raise PairDataError(f"data.source: {source!r} not found (format {kind})")
    if kind == "disk":
        root_path = _disk_split_folder(path, split)
        shards = _disk_shards(root_path) if list_shards else ()
        return PairSource("disk", str(root_path), shards, source)
    if kind != "parquet":
        raise PairDataError(f"data.format: {fmt!r}; expected one of auto, parquet, disk, hub")
    if path.is_file():
        return PairSource("parquet", str(path.parent), (path.name,), source)
    shards = _select_split([p.relative_to(path).as_posix() for p in path.rglob("*.parquet")], split)
    if list_shards and not shards:
        raise PairDataError(f"data.source: {source}: no *.parquet files in this folder")
    return PairSource("parquet", str(path), shards if list_shards else (), source)


def _detect_kind(source: str) -> SourceKind:
    path = Path(source)
    if path.is_file():
        return "parquet"
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return "disk"
        return "parquet"
    if _HUB_ID.match(source):
        return "hub"
    raise PairDataError(
        f"data.source: {source!r} is neither a local file or folder nor a hub dataset id (owner/name)"
    )


def _select_split(paths: list[str], split: str) -> tuple[str, ...]:
    """Keep ``split``'s files where the names say which split a file holds; else keep them all."""

    def in_split(p: str) -> bool:
        parts = p.split("/")
        name = parts[-1]
        return split in parts[:-1] or name.startswith(f"{split}-") or name.startswith(f"{split}.")

    chosen = [p for p in paths if in_split(p)]
    return tuple(sorted(chosen or paths))


def _disk_split_folder(path: Path, split: str) -> Path:
    dict_file = path / "dataset_dict.json"
    if dict_file.is_file():
        splits = json.loads(dict_file.read_text()).get("splits", [])
        if split not in splits:
            raise PairDataError(f"{dict_file}: no split {split!r} (data.split); splits: {', '.join(splits)}")
        return path / split
    return path


def _disk_shards(folder: Path) -> tuple[str, ...]:
    state = folder / "state.json"
    if not state.is_file():
        raise PairDataError(f"{folder}: not a datasets save_to_disk folder (no state.json)")
    files = [entry["filename"] for entry in json.loads(state.read_text()).get("_data_files", [])]
    if not files:
        raise PairDataError(f"{state}: lists no data files")
    return tuple(files)


def _hub_shards(root: str, split: str) -> tuple[str, ...]:
    from huggingface_hub import HfFileSystem

    found = HfFileSystem().glob(f"{root}/**/*.parquet")
    shards = _select_split([p[len(root) + 1 :] for p in found], split)
    if not shards:
        raise PairDataError(f"data.source: hub dataset {root[len('datasets/') :]!r} has no parquet files")
    return shards


# ---------------------------------------------------------------- one shard


def _is_image_type(t: pa.DataType) -> bool:
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return True
    return pa.types.is_struct(t) and any(
        t.field(i).name == "bytes" and _is_image_type(t.field(i).type) for i in range(t.num_fields)
    )


def _is_label_type(t: pa.DataType) -> bool:
    return pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_null(t)


def check_column_types(path: str, schema: pa.Schema) -> None:
    """Refuse a shard whose pair columns have the wrong types, naming the file and column: images are
    bytes (or Pick-a-Pic's ``{"bytes": ...}`` struct), labels numbers (strings such as "1.0" are
    refused, not coerced: a relabelled file should store numbers), captions strings."""
    expected = {
        "jpg_0": (_is_image_type, "binary image bytes or a struct with a binary `bytes` field"),
        "jpg_1": (_is_image_type, "binary image bytes or a struct with a binary `bytes` field"),
        "label_0": (_is_label_type, "numbers (0, 0.5 or 1); string labels are not converted"),
        "label_1": (_is_label_type, "numbers (0, 0.5 or 1); string labels are not converted"),
        "caption": (
            lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t),
            "strings",
        ),
    }
    for name, (ok, what) in expected.items():
        t = schema.field(name).type
        if not ok(t):
            raise PairDataError(f"{path}: column {name} has type {t}; expected {what}")


class Shard:
    """An opened shard: row count, schema check, streaming batches, and random access to rows."""

    def __init__(self, source: PairSource, shard: str, max_cached_groups: int = 2) -> None:
        self.path = source.full_path(shard)
        self.kind = source.kind
        self._groups: OrderedDict[tuple[int, tuple[str, ...]], pa.Table] = OrderedDict()
        self._max_cached_groups = max_cached_groups
        if source.kind != "hub" and os.path.isfile(self.path) and os.path.getsize(self.path) == 0:
            raise PairDataError(
                f"{self.path}: empty shard (0 bytes); remove it or point data.source elsewhere"
            )
        try:
            if shard.endswith(".arrow"):
                self._table: pa.Table | None = _read_arrow(self.path)
                self._parquet: pq.ParquetFile | None = None
                schema, self.num_rows = self._table.schema, self._table.num_rows
                self._group_starts = np.array([0], dtype=np.int64)
            else:
                fs = source.filesystem()
                self._parquet = pq.ParquetFile(fs.open(self.path, "rb") if fs is not None else self.path)
                self._table = None
                meta = self._parquet.metadata
                schema, self.num_rows = self._parquet.schema_arrow, meta.num_rows
                sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
                self._group_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        except (OSError, pa.ArrowException) as err:
            raise PairDataError(f"{self.path}: cannot be read as a data shard: {err}") from err
        self.column_names: tuple[str, ...] = tuple(schema.names)
        missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
        if missing:
            raise PairDataError(
                f"{self.path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)} "
                f"(found: {', '.join(schema.names)})"
            )
        check_column_types(self.path, schema)
        if self.num_rows == 0:
            raise PairDataError(
                f"{self.path}: empty shard (0 rows); remove it or point data.source elsewhere"
            )

    def has_column(self, name: str) -> bool:
        return name in self.column_names

    def iter_batches(self, columns: tuple[str, ...], batch_size: int) -> Iterator[pa.RecordBatch]:
        """Stream the shard in record batches of at most ``batch_size`` rows, in row order."""
        if self._table is not None:
            yield from self._table.select(list(columns)).to_batches(max_chunksize=batch_size)
        else:
            assert self._parquet is not None
            yield from self._parquet.iter_batches(batch_size=batch_size, columns=list(columns))

    def take(self, rows: list[int], columns: tuple[str, ...]) -> list[dict[str, Any]]:
        """Rows ``rows`` (any order) as dicts; each parquet row group is read once and kept in a small LRU."""
        for row in rows:
            if not 0 <= row < self.num_rows:
                raise PairDataError(
                    f"{self.path}: row {row} out of range (the shard has {self.num_rows} rows)"
                )
        if self._table is not None:
            return self._table.select(list(columns)).take(pa.array(rows, pa.int64())).to_pylist()
        groups = np.searchsorted(self._group_starts, np.asarray(rows, dtype=np.int64), side="right") - 1
        out: list[dict[str, Any]] = [{} for _ in rows]
        for group in np.unique(groups):
            table = self._row_group(int(group), columns)
            where = np.nonzero(groups == group)[0]
            local = [rows[i] - int(self._group_starts[group]) for i in where]
            for i, record in zip(where, table.take(pa.array(local, pa.int64())).to_pylist()):
                out[int(i)] = record
        return out

    def _row_group(self, group: int, columns: tuple[str, ...]) -> pa.Table:
        key = (group, columns)
        if key in self._groups:
            self._groups.move_to_end(key)
            return self._groups[key]
        assert self._parquet is not None
        table = self._parquet.read_row_group(group, columns=list(columns))
        self._groups[key] = table
        while len(self._groups) > self._max_cached_groups:
            self._groups.popitem(last=False)
        return table


def _read_arrow(path: str) -> pa.Table:
    """A ``datasets`` Arrow file (IPC stream, or file format), memory-mapped: zero-copy."""
    source = pa.memory_map(path)
    try:
        return pa.ipc.open_stream(source).read_all()
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.memory_map(path)).read_all()


class ShardCache:
    """Opened shards by name, at most ``max_open`` at a time; safe across DataLoader worker forks."""

    def __init__(self, source: PairSource, max_open: int = 8) -> None:
        self.source = source
        self._max_open = max_open
        self._open: OrderedDict[str, Shard] = OrderedDict()
        self._pid = os.getpid()

    def get(self, shard: str) -> Shard:
        if os.getpid() != self._pid:  # a forked worker must not share parent file handles
            self._open.clear()
            self._pid = os.getpid()
        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        opened = Shard(self.source, shard)
        self._open[shard] = opened
        while len(self._open) > self._max_open:
            self._open.popitem(last=False)
        return opened
