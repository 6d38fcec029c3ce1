"""Pick-a-Pic-shaped preference pairs (spec §4-§5).

- :mod:`.sources`    where pairs live (parquet shards, a ``save_to_disk`` folder, a hub id) and streaming reads
- :mod:`.images`     image cells → bytes → a fully decoded RGB image, or :class:`CorruptImageError`
- :mod:`.filtering`  ``inpo prepare``: ties, corrupt pairs, duplicates, long captions → the pair index
- :mod:`.index`      the pair index file (shard, row, winner side), written atomically, read validated
- :mod:`.transforms` resize shorter side, crop, independent flips, [-1, 1]; per-pair draws
- :mod:`.dataset`    :class:`PairDataset` → :class:`PairExample` → :func:`collate_pairs` → :class:`PairBatch`
- :mod:`.fixtures`   small Pick-a-Pic-shaped parquet files with known defects, for tests
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dataset import PairBatch, PairDataset, PairExample, collate_pairs
    from .filtering import PAIRS_FILE, SUMMARY_FILE, PrepareSummary, prepare_pairs
    from .fixtures import PickapicFixture, write_pickapic_fixture
    from .images import CorruptImageError
    from .index import PairIndex, read_pair_index
    from .sources import PairDataError, PairSource, resolve_source

# name -> submodule. Imported on first use, so that `inpo prepare` and its worker processes, which
# need no torch, do not pay for importing it.
_EXPORTS = {
    **dict.fromkeys(("PairBatch", "PairDataset", "PairExample", "collate_pairs"), ".dataset"),
    **dict.fromkeys(("PAIRS_FILE", "SUMMARY_FILE", "PrepareSummary", "prepare_pairs"), ".filtering"),
    **dict.fromkeys(("PickapicFixture", "write_pickapic_fixture"), ".fixtures"),
    "CorruptImageError": ".images",
    **dict.fromkeys(("PairIndex", "read_pair_index"), ".index"),
    **dict.fromkeys(("PairDataError", "PairSource", "resolve_source"), ".sources"),
}
__all__ = [
    "PAIRS_FILE",
    "SUMMARY_FILE",
    "CorruptImageError",
    "PairBatch",
    "PairDataError",
    "PairDataset",
    "PairExample",
    "PairIndex",
    "PairSource",
    "PickapicFixture",
    "PrepareSummary",
    "collate_pairs",
    "prepare_pairs",
    "read_pair_index",
    "resolve_source",
    "write_pickapic_fixture",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
