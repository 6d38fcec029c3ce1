"""Checks of the pair data a stage reads, before any work: the source exists and holds this world's
pairs, and the pair index was built from it and suits the methods that will read it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .. import layout
from ..config import Config
from ..errors import InputError
from .index import read_pair_index


def check_data_source(cfg: Config, made_by_a_stage: bool = False) -> None:
    """``data.source`` exists (unless ``made_by_a_stage``: the world's pairs stage will write it) and,
    when it is a world's pairs folder, holds this world's pairs."""
    from ..locations import looks_local

    source = cfg.data.source
    if Path(source).exists():
        check_source_world(cfg)
        return
    if made_by_a_stage:
        return
    import os

    if looks_local(source) or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise InputError(
            f"data.source: {source!r} does not exist (expected parquet shard(s) or a save_to_disk folder)"
        )


def check_source_world(cfg: Config) -> None:
    """Refuse pairs a world made for another world (``metadata.json``'s ``world``; one folder serves
    every world, :func:`inpo.layout.world_pairs_dir`)."""
    meta = Path(cfg.data.source) / "metadata.json"
    if not meta.is_file():
        return
    try:
        made_for = json.loads(meta.read_text()).get("world")
    except (json.JSONDecodeError, AttributeError):
        return  # not a world's record: a plain data folder may hold any metadata.json
    if made_for is not None and made_for != cfg.world:
        raise InputError(
            f"data.source: {cfg.data.source} holds world {made_for!r}'s pairs ({meta}) but world is "
            f"{cfg.world!r}; run `inpo world pairs` (or `dvc repro`) for {cfg.world!r} first"
        )


def check_pair_index(
    cfg: Config, need_a_winner: Sequence[str] = (), need_soft_labels: Sequence[str] = ()
) -> None:
    """The pair index exists, was built from ``data.source`` / ``data.split``, has no ties when
    any of ``need_a_winner`` (methods or stages such as SFT) will read it, and carries smoothed
    labels when any of ``need_soft_labels`` (SmPO) will."""
    index = read_pair_index(layout.pair_index(cfg))
    index.require_source(cfg.data.source, cfg.data.split)
    if need_soft_labels and index.soft_label_0 is None:
        raise InputError(
            f"{index.path}: {', '.join(need_soft_labels)} trains on smoothed labels (soft_label_0), and "
            f"data.source {cfg.data.source!r} has none; write them with `inpo relabel` (relabel.tau per "
            "scorer), then `inpo prepare data.source=<its folder>`"
        )
    ties = int((index.label_0 == 0.5).sum())
    if ties and need_a_winner:
        raise InputError(
            f"{index.path}: {ties} tie(s) kept (data.drop_ties: false), but {', '.join(need_a_winner)} "
            "needs a winner in every pair; set data.drop_ties: true (DPO and InPO train ties as soft labels)"
        )
