"""`inpo prepare`'s filter on Pick-a-Pic-shaped fixtures: counts, row-by-row alignment, clear errors."""

from __future__ import annotations

import json
from dataclasses import replace

import pyarrow.parquet as pq
import pytest

from inpo.config.sections import DataConfig
from inpo.data.dataset import PairDataset
from inpo.data.filtering import PAIRS_FILE, SUMMARY_FILE, prepare_pairs
from inpo.data.fixtures import encode_image, write_pickapic_disk, write_pickapic_fixture, write_pickapic_shard
from inpo.data.images import decode_rgb
from inpo.data.index import read_pair_index
from inpo.data.sources import PairDataError, resolve_source
from inpo.data.transforms import transform_image

# Loading without randomness, so an image can be compared with the expected bytes' transform.
PLAIN = DataConfig(resolution=8, crop="center", random_flip=False, caption_dropout=0.0)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    # N = 40 rows, k = 5 ties, m = 4 corrupt images in 3 shards of row groups of 7 (mixed binary/struct cells).
    return write_pickapic_fixture(
        tmp_path_factory.mktemp("fx") / "pairs", n_rows=40, n_ties=5, n_corrupt=4, n_shards=3, seed=0
    )


def test_fixture_has_the_promised_defects(fixture):
    corrupt = [r for r in fixture.rows if r.corrupt]
    assert len(fixture.rows) == 40 and len(fixture.tie_rows) == 5 and len(fixture.shards) == 3
    assert sum(r.corrupt_0 + r.corrupt_1 for r in fixture.rows) == 4  # m = 4 damaged images
    assert sum(r.corrupt_0 and r.corrupt_1 for r in corrupt) == 1  # one pair with both images damaged
    assert sum(r.is_tie for r in corrupt) == 1  # one tie row with a damaged image
    sizes = {decode_rgb(r.jpg_0).size for r in fixture.rows if not r.corrupt_0}
    assert any(w != h for w, h in sizes)  # odd, non-square sizes
    assert {r.jpg_0[:2] for r in fixture.rows if not r.corrupt_0} == {b"\xff\xd8", b"\x89P"}  # JPEG and PNG


def test_fixture_yields_exactly_the_expected_pairs_row_by_row(fixture, tmp_path):
    cfg = replace(PLAIN, source=str(fixture.root))
    summary = prepare_pairs(cfg, tmp_path, progress=False)
    # m' = 3 pairs touched by the 4 damaged images: one with both images damaged, one with one image,
    # and one tie row with one image; the tie row is already among the k = 5 ties, so
    # kept = N - k - (m' - 1) = 40 - 5 - 2 = 33: no pair is dropped twice and none half-dropped.
    assert summary.kept == 33
    assert summary.rows_read == 40
    assert summary.dropped == {"tie": 5, "caption_too_long": 0, "corrupt_image": 2, "duplicate": 0}
    assert json.loads((tmp_path / SUMMARY_FILE).read_text())["kept"] == 33

    expected = fixture.expected_kept()
    index = read_pair_index(tmp_path / PAIRS_FILE)
    assert len(index) == len(expected) == 33
    table = pq.read_table(tmp_path / PAIRS_FILE).to_pylist()
    for i, (got, want) in enumerate(zip(table, expected)):
        assert (got["pair_index"], got["shard"], got["row"]) == (i, want.shard, want.row)
        assert got["winner"] == want.winner_side
        assert got["caption"] == want.caption

    dataset = PairDataset(tmp_path / PAIRS_FILE, cfg, seed=0)
    encoded = dataset.encoded_pairs(list(range(len(dataset))))
    for i, want in enumerate(expected):
        assert encoded[i] == (want.winner_bytes, want.loser_bytes), f"pair {i} misaligned"
        example = dataset[i]
        assert example.caption == want.caption
        for got_img, data in ((example.image_w, want.winner_bytes), (example.image_l, want.loser_bytes)):
            assert torch_equal(
                got_img, transform_image(decode_rgb(data), 8, "center", "bilinear", False, (0.0, 0.0))
            )

    # the per-pair payload a method may ask for: hard labels give the winner 1.0
    fields = dataset.pair_fields(list(range(len(dataset))), ["label_w"])
    assert fields["label_w"].tolist() == [1.0] * len(expected)
    with pytest.raises(KeyError, match="pair field 'margin' is not known; expected one of label_w"):
        dataset.pair_fields([0], ["margin"])
    draws = dataset.pair_draws(3)  # the same draws the dataset's own transform uses
    assert dataset.caption(3, draws) == dataset[3].caption and draws.flip_w == dataset[3].flip_w


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())


def test_dedup_and_caption_limit_are_counted(tmp_path):
    fx = write_pickapic_fixture(
        tmp_path / "pairs", n_rows=30, n_ties=3, n_corrupt=3, n_shards=2, seed=1, n_duplicates=2
    )
    dup_rows = [fx.rows[g] for g in fx.duplicate_rows]
    originals = [fx.rows[r.duplicate_of] for r in dup_rows]  # type: ignore[index]
    assert {(d.jpg_0 == o.jpg_0) for d, o in zip(dup_rows, originals)} == {True, False}  # one stored swapped

    # Captions are "prompt {g}: " + (g % 4) copies of a 20-character phrase: lengths 10-11, 30-31, 51-52,
    # 72-73; a limit of 40 drops the rows with g % 4 in {2, 3}.
    limit = 40
    cfg = replace(PLAIN, source=str(fx.root), dedup=True, max_caption_chars=limit)
    summary = prepare_pairs(cfg, tmp_path / "out", progress=False)
    # Expected counts by the documented order tie → caption → corrupt → duplicate:
    live = [r for r in fx.rows if not r.is_tie]
    long = [r for r in live if len(r.caption) > limit]
    assert {r.global_row % 4 for r in long} == {2, 3}
    short = [r for r in live if len(r.caption) <= limit]
    corrupt = [r for r in short if r.corrupt]
    dups = [r for r in short if not r.corrupt and r.duplicate_of is not None]
    assert summary.dropped == {
        "tie": 3,
        "caption_too_long": len(long),
        "corrupt_image": len(corrupt),
        "duplicate": len(dups),
    }
    assert summary.rows_read == 30 == summary.kept + sum(summary.dropped.values())
    assert summary.kept == len(fx.expected_kept(dedup=True, max_caption_chars=limit))

    no_limit = prepare_pairs(replace(cfg, max_caption_chars=None), tmp_path / "out2", progress=False)
    assert no_limit.dropped["duplicate"] == 2  # both duplicates, the swapped one included


def test_max_pairs_stops_early_and_keeps_the_first_pairs(fixture, tmp_path):
    summary = prepare_pairs(replace(PLAIN, source=str(fixture.root), max_pairs=10), tmp_path, progress=False)
    assert summary.kept == 10 and summary.stopped_at_max_pairs
    index = read_pair_index(tmp_path / PAIRS_FILE)
    want = fixture.expected_kept()[:10]
    assert [(index.shards[s], int(r)) for s, r in zip(index.shard_id, index.row)] == [
        (w.shard, w.row) for w in want
    ]


def test_save_to_disk_folder_and_worker_processes_match_parquet(fixture, tmp_path):
    base = prepare_pairs(replace(PLAIN, source=str(fixture.root)), tmp_path / "parquet", progress=False)
    workers = prepare_pairs(
        replace(PLAIN, source=str(fixture.root), prepare_workers=2), tmp_path / "workers", progress=False
    )
    assert workers == base
    assert pq.read_table(tmp_path / "workers" / PAIRS_FILE).equals(
        pq.read_table(tmp_path / "parquet" / PAIRS_FILE)
    )

    disk = write_pickapic_disk(fixture, tmp_path / "disk")
    cfg = replace(PLAIN, source=str(disk))
    summary = prepare_pairs(cfg, tmp_path / "out", progress=False)
    assert summary.kind == "disk" and summary.kept == 33 and summary.dropped == base.dropped
    dataset = PairDataset(tmp_path / "out" / PAIRS_FILE, cfg, seed=0)
    expected = fixture.expected_kept()
    assert dataset.index.captions == [r.caption for r in expected]
    assert dataset.encoded_pairs(list(range(33))) == [(r.winner_bytes, r.loser_bytes) for r in expected]


def _records(n: int, **overrides):
    img = encode_image(__import__("numpy").zeros((4, 6, 3), dtype="uint8"), "PNG")
    rows = [dict(caption=f"c{i}", jpg_0=img, jpg_1=img, label_0=1.0, label_1=0.0) for i in range(n)]
    for row, values in overrides.items():
        rows[int(row.removeprefix("r"))].update(values)
    return rows


def test_missing_column_names_the_file_and_column(tmp_path):
    good = write_pickapic_shard(tmp_path / "src" / "train-0.parquet", _records(3))
    bad = write_pickapic_shard(
        tmp_path / "src" / "train-1.parquet", _records(3), columns=("caption", "jpg_0", "label_0", "label_1")
    )
    with pytest.raises(PairDataError, match=rf"{bad}: missing column\(s\) jpg_1") as err:
        prepare_pairs(replace(PLAIN, source=str(good.parent)), tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / PAIRS_FILE).exists()
    assert "found: caption, jpg_0, label_0, label_1" in str(err.value)


def test_empty_shard_names_the_file(tmp_path):
    write_pickapic_shard(tmp_path / "a" / "train-0.parquet", _records(3))
    empty = write_pickapic_shard(tmp_path / "a" / "train-1.parquet", [])
    with pytest.raises(PairDataError, match=rf"{empty}: empty shard \(0 rows\)"):
        prepare_pairs(replace(PLAIN, source=str(tmp_path / "a")), tmp_path / "out", progress=False)
    zero_bytes = tmp_path / "b" / "train-0.parquet"
    zero_bytes.parent.mkdir()
    zero_bytes.write_bytes(b"")
    with pytest.raises(PairDataError, match=rf"{zero_bytes}: empty shard \(0 bytes\)"):
        prepare_pairs(replace(PLAIN, source=str(zero_bytes)), tmp_path / "out", progress=False)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"label_0": 0.3, "label_1": 0.7}, "label_0 = 0.3; expected one of 0, 0.5, 1"),
        ({"label_0": 1.0, "label_1": 2.0}, "label_1 = 2.0; expected one of 0, 0.5, 1"),
        ({"label_0": None, "label_1": 1.0}, "label_0 = None; expected one of 0, 0.5, 1"),
        ({"label_0": 1.0, "label_1": 1.0}, r"label_0 \+ label_1 = 1.0 \+ 1.0; expected a sum of 1"),
    ],
)
def test_bad_label_names_the_file_and_row(tmp_path, labels, message):
    # Row 66 of the second shard lies in the second 64-row scan batch: the row number must count
    # across batches (and across the row groups of 10).
    write_pickapic_shard(tmp_path / "train-0.parquet", _records(2))
    bad = write_pickapic_shard(tmp_path / "train-1.parquet", _records(70, r66=labels), row_group_size=10)
    with pytest.raises(PairDataError, match=rf"{bad}: row 66: {message}"):
        prepare_pairs(replace(PLAIN, source=str(tmp_path)), tmp_path / "out", progress=False)


def test_split_selection_and_struct_cells(tmp_path):
    write_pickapic_shard(tmp_path / "train-00000-of-00001.parquet", _records(4), image_storage="struct")
    write_pickapic_shard(tmp_path / "test-00000-of-00001.parquet", _records(9))
    summary = prepare_pairs(replace(PLAIN, source=str(tmp_path)), tmp_path / "out", progress=False)
    assert (summary.shards, summary.rows_read, summary.kept) == (1, 4, 4)  # the test split is left alone
    test = prepare_pairs(
        replace(PLAIN, source=str(tmp_path), split="test"), tmp_path / "out2", progress=False
    )
    assert test.rows_read == 9


def test_changed_shard_is_caught_at_load_time(tmp_path):
    fx = write_pickapic_fixture(tmp_path / "pairs", n_rows=12, n_ties=0, n_corrupt=0, n_shards=2, seed=2)
    cfg = replace(PLAIN, source=str(fx.root))
    prepare_pairs(cfg, tmp_path / "out", progress=False)
    write_pickapic_shard(fx.root / fx.shards[1], _records(2))
    dataset = PairDataset(tmp_path / "out" / PAIRS_FILE, cfg, seed=0)
    with pytest.raises(PairDataError, match=r"2 rows, but .*pairs.parquet was built when it had 6"):
        dataset[11]


def test_source_kinds_are_detected(tmp_path):
    shard = write_pickapic_shard(tmp_path / "one.parquet", _records(2))
    single = resolve_source(str(shard))
    assert (single.kind, single.root, single.shards) == ("parquet", str(tmp_path), ("one.parquet",))
    # Not a local path but shaped owner/name: a hub id (listing skipped: no hub here).
    hub = resolve_source("someone/pickapic-mirror", list_shards=False)
    assert (hub.kind, hub.root) == ("hub", "datasets/someone/pickapic-mirror")
    with pytest.raises(PairDataError, match="neither a local file or folder nor a hub dataset id"):
        resolve_source(str(tmp_path / "missing" / "x"))
