"""Small Pick-a-Pic-v2-shaped data with known defects, and the ground truth to check a reader against.

    fx = write_pickapic_fixture(tmp_path / "pairs", n_rows=40, n_ties=5, n_corrupt=4, n_shards=3, seed=0)
    fx.expected_kept()   # the FixtureRows a correct filter keeps, in pair-index order

Rows get random labels, captions of varied length, images of odd sizes (non-square; JPEG and PNG
alternate) with random pixels. ``n_corrupt`` images are damaged (truncated, garbage, or empty
bytes): with two or more, one kept-candidate row has both images corrupt; with three or more and
a tie, one tie row has a corrupt image; the rest damage one side of distinct non-tie rows.
``n_duplicates`` late clean rows repeat early clean ones (every second one with sides and labels
swapped: the same preference written the other way round). Shards
are named ``train-0000k-of-0000n.parquet`` and use small row groups, so readers cross row-group
boundaries. ``image_storage`` picks plain binary cells, ``{"bytes", "path"}`` structs (the HF
``Image`` feature), or ``mixed`` (alternating per shard).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from .sources import REQUIRED_COLUMNS

DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((24, 16), (16, 28), (20, 20), (33, 18), (18, 25))
ImageStorage = Literal["binary", "struct", "mixed"]
STRUCT_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


@dataclass(frozen=True)
class FixtureRow:
    """Ground truth for one source row."""

    shard: str  # file name relative to the fixture folder
    row: int  # row inside the shard
    global_row: int  # row over all shards, in shard order
    caption: str
    label_0: float
    label_1: float
    jpg_0: bytes
    jpg_1: bytes
    corrupt_0: bool = False
    corrupt_1: bool = False
    duplicate_of: int | None = None  # global_row of the identical pair this one repeats

    @property
    def is_tie(self) -> bool:
        return self.label_0 == 0.5

    @property
    def corrupt(self) -> bool:
        return self.corrupt_0 or self.corrupt_1

    @property
    def winner_side(self) -> int:
        return 1 if self.label_0 == 0.0 else 0

    @property
    def winner_bytes(self) -> bytes:
        return self.jpg_1 if self.winner_side == 1 else self.jpg_0

    @property
    def loser_bytes(self) -> bytes:
        return self.jpg_0 if self.winner_side == 1 else self.jpg_1


@dataclass(frozen=True)
class PickapicFixture:
    root: Path
    shards: tuple[str, ...]
    rows: tuple[FixtureRow, ...]

    @property
    def tie_rows(self) -> list[int]:
        return [r.global_row for r in self.rows if r.is_tie]

    @property
    def corrupt_rows(self) -> list[int]:
        """Rows with at least one corrupt image (ties included)."""
        return [r.global_row for r in self.rows if r.corrupt]

    @property
    def duplicate_rows(self) -> list[int]:
        return [r.global_row for r in self.rows if r.duplicate_of is not None]

    def expected_kept(
        self, drop_ties: bool = True, dedup: bool = False, max_caption_chars: int | None = None
    ) -> list[FixtureRow]:
        keep = []
        for r in self.rows:
            if (drop_ties and r.is_tie) or r.corrupt:
                continue
            if max_caption_chars is not None and len(r.caption) > max_caption_chars:
                continue
            if dedup and r.duplicate_of is not None:
                continue
            keep.append(r)
        return keep


def encode_image(pixels: np.ndarray, fmt: str) -> bytes:
    """[H, W, 3] uint8 → encoded bytes (``fmt``: JPEG or PNG)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def damage(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """``truncated``: the first half; ``garbage``: random bytes of the same length; ``empty``: b""."""
    if kind == "truncated":
        return data[: len(data) // 2]
    if kind == "garbage":
        return rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()
    if kind == "empty":
        return b""
    raise ValueError(f"unknown damage {kind!r}; expected truncated, garbage or empty")


def write_pickapic_shard(
    path: str | Path,
    records: Sequence[dict[str, Any]],
    image_storage: Literal["binary", "struct"] = "binary",
    row_group_size: int | None = None,
    columns: Sequence[str] = REQUIRED_COLUMNS,
) -> Path:
    """Write ``records`` (dicts with Pick-a-Pic keys) as one parquet shard with exactly ``columns``."""
    image_type = STRUCT_IMAGE if image_storage == "struct" else pa.binary()
    types = {
        "caption": pa.string(),
        "jpg_0": image_type,
        "jpg_1": image_type,
        "label_0": pa.float64(),
        "label_1": pa.float64(),
    }
    schema = pa.schema([(c, types.get(c, pa.string())) for c in columns])
    data: dict[str, list[Any]] = {c: [] for c in columns}
    for record in records:
        for c in columns:
            value = record.get(c)
            if c in ("jpg_0", "jpg_1") and image_storage == "struct" and isinstance(value, bytes):
                value = {"bytes": value, "path": None}
            data[c].append(value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(data, schema=schema), path, row_group_size=row_group_size)
    return path


def _roles(
    n_rows: int, n_ties: int, n_corrupt: int, n_duplicates: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Which rows are ties, which images are damaged, which rows repeat which."""
    order = [int(i) for i in rng.permutation(n_rows)]
    ties, rest = sorted(order[:n_ties]), order[n_ties:]
    damaged: list[tuple[int, int]] = []  # (row, side)
    left = n_corrupt
    if left >= 2 and rest:
        row = rest.pop()
        damaged += [(row, 0), (row, 1)]
        left -= 2
    if left >= 1 and ties and n_corrupt >= 3:
        damaged.append((ties[0], int(rng.integers(2))))
        left -= 1
    for k in range(left):
        if not rest:
            raise ValueError(f"n_corrupt={n_corrupt}: not enough non-tie rows in {n_rows} rows")
        damaged.append((rest.pop(), k % 2))
    clean = sorted(rest)
    if 2 * n_duplicates > len(clean):
        raise ValueError(
            f"n_duplicates={n_duplicates}: needs {2 * n_duplicates} clean rows, have {len(clean)}"
        )
    duplicates = {clean[-1 - k]: clean[k] for k in range(n_duplicates)}
    return {"ties": set(ties), "damaged": damaged, "duplicates": duplicates}


def write_pickapic_fixture(
    out_dir: str | Path,
    n_rows: int = 40,
    n_ties: int = 5,
    n_corrupt: int = 4,
    n_shards: int = 3,
    seed: int = 0,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    n_duplicates: int = 0,
    image_storage: ImageStorage = "mixed",
    row_group_size: int = 7,
) -> PickapicFixture:
    """Write ``n_shards`` parquet shards of ``n_rows`` pairs under ``out_dir``; return the ground truth."""
    if not 1 <= n_shards <= n_rows:
        raise ValueError(f"n_shards={n_shards}: expected 1..n_rows ({n_rows})")
    rng = np.random.default_rng(seed)
    roles = _roles(n_rows, n_ties, n_corrupt, n_duplicates, rng)
    kinds = ("truncated", "garbage", "empty")
    damaged_sides = {(row, side): kinds[k % 3] for k, (row, side) in enumerate(roles["damaged"])}
    rows: list[dict[str, Any]] = []
    image_counter = 0
    for g in range(n_rows):
        images = []
        for side in (0, 1):
            w, h = sizes[image_counter % len(sizes)]
            fmt = "JPEG" if (g + side) % 2 == 0 else "PNG"
            data = encode_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), fmt)
            if (g, side) in damaged_sides:
                data = damage(data, damaged_sides[(g, side)], rng)
            images.append(data)
            image_counter += 1
        label_0 = 0.5 if g in roles["ties"] else float(rng.integers(2))
        caption = f"prompt {g}: " + " ".join(["a quiet lake at dawn"] * (g % 4))
        rows.append(
            dict(caption=caption, label_0=label_0, label_1=1.0 - label_0, jpg_0=images[0], jpg_1=images[1])
        )
    for k, (dup, original) in enumerate(roles["duplicates"].items()):
        src = rows[original]
        if k % 2:  # the same preference written the other way round: sides and labels swapped
            rows[dup] = dict(
                src, jpg_0=src["jpg_1"], jpg_1=src["jpg_0"], label_0=src["label_1"], label_1=src["label_0"]
            )
        else:
            rows[dup] = dict(src)
    root = Path(out_dir)
    shards, truth = [], []
    for k, chunk in enumerate(np.array_split(np.arange(n_rows), n_shards)):
        name = f"train-{k:05d}-of-{n_shards:05d}.parquet"
        storage: Literal["binary", "struct"] = (
            "struct" if image_storage == "struct" or (image_storage == "mixed" and k % 2) else "binary"
        )
        write_pickapic_shard(root / name, [rows[int(g)] for g in chunk], storage, row_group_size)
        shards.append(name)
        for r, g in enumerate(int(g) for g in chunk):
            truth.append(
                FixtureRow(
                    shard=name,
                    row=r,
                    global_row=g,
                    caption=rows[g]["caption"],
                    label_0=rows[g]["label_0"],
                    label_1=rows[g]["label_1"],
                    jpg_0=rows[g]["jpg_0"],
                    jpg_1=rows[g]["jpg_1"],
                    corrupt_0=(g, 0) in damaged_sides,
                    corrupt_1=(g, 1) in damaged_sides,
                    duplicate_of=roles["duplicates"].get(g),
                )
            )
    return PickapicFixture(root=root, shards=tuple(shards), rows=tuple(truth))


def write_pickapic_disk(fixture: PickapicFixture, out_dir: str | Path) -> Path:
    """The fixture's rows as a ``datasets`` ``save_to_disk`` folder (images as the HF ``Image`` feature)."""
    import datasets

    features = datasets.Features(
        {
            "caption": datasets.Value("string"),
            "jpg_0": datasets.Image(),
            "jpg_1": datasets.Image(),
            "label_0": datasets.Value("float64"),
            "label_1": datasets.Value("float64"),
        }
    )
    columns: dict[str, list[Any]] = {c: [] for c in REQUIRED_COLUMNS}
    for r in fixture.rows:
        columns["caption"].append(r.caption)
        columns["jpg_0"].append({"bytes": r.jpg_0, "path": None})
        columns["jpg_1"].append({"bytes": r.jpg_1, "path": None})
        columns["label_0"].append(r.label_0)
        columns["label_1"].append(r.label_1)
    dataset = datasets.Dataset.from_dict(columns, features=features)
    dataset.save_to_disk(str(out_dir))
    return Path(out_dir)
