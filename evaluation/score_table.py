"""The per-image score table: one row per (model, prompt_set, prompt_id, seed, metric), in parquet.

Columns: ``model, prompt_set, prompt_id, seed, prompt, metric, value`` plus ``category`` (Parti
category / HPDv2 style, "" when none). Values are stored raw (HPS and CLIP as cosines). Scorer
``info()`` dicts and run settings travel as JSON in the parquet schema metadata. Files are written
atomically (:func:`inpo.io.write_parquet_atomic`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from inpo.io import write_parquet_atomic

if TYPE_CHECKING:
    from evaluation.prompts import EvalItem

SCORE_COLUMNS = ("model", "prompt_set", "prompt_id", "seed", "prompt", "metric", "value", "category")
KEY_COLUMNS = ("model", "prompt_set", "prompt_id", "seed", "metric")
METADATA_KEY = b"inpo.scores"


def score_rows(model: str, metric: str, items: Sequence[EvalItem], values: Any) -> pd.DataFrame:
    """Rows of the score table for one model and metric; ``values[i]`` scores ``items[i]``."""
    vals = np.asarray(values.tolist() if hasattr(values, "tolist") else values, dtype=np.float64).reshape(-1)
    if vals.size != len(items):
        raise ValueError(f"{model}/{metric}: {vals.size} values for {len(items)} items")
    return pd.DataFrame(
        {
            "model": model,
            "prompt_set": [it.prompt_set for it in items],
            "prompt_id": [it.prompt_id for it in items],
            "seed": np.asarray([it.seed for it in items], dtype=np.int64),
            "prompt": [it.prompt for it in items],
            "metric": metric,
            "value": vals,
            "category": [it.category for it in items],
        },
        columns=list(SCORE_COLUMNS),
    )


def validate_scores(table: pd.DataFrame, where: str = "score table") -> pd.DataFrame:
    """The table with the columns in order and typed; missing columns, NaNs and duplicate keys are errors."""
    missing = [c for c in SCORE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}; expected {list(SCORE_COLUMNS)}")
    out = table.loc[:, list(SCORE_COLUMNS)].reset_index(drop=True)
    for col in ("model", "prompt_set", "prompt_id", "prompt", "metric", "category"):
        out[col] = out[col].astype(str)
    out["seed"] = out["seed"].astype(np.int64)
    out["value"] = out["value"].astype(np.float64)
    if out["value"].isna().any():
        rows = out.index[out["value"].isna()].tolist()[:5]
        raise ValueError(f"{where}: NaN values at rows {rows}")
    dup = out.duplicated(list(KEY_COLUMNS), keep=False)
    if dup.any():
        first = out.loc[dup, list(KEY_COLUMNS)].iloc[0].to_dict()
        raise ValueError(f"{where}: {int(dup.sum())} rows share a key {list(KEY_COLUMNS)}, e.g. {first}")
    return out


def concat_scores(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Stack score tables (e.g. several models or metrics); duplicate keys are errors."""
    return validate_scores(pd.concat(list(tables), ignore_index=True))


def write_scores(table: pd.DataFrame, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Validate and write ``table`` to parquet atomically; ``metadata`` (JSON-able) goes in the schema."""
    import pyarrow as pa

    arrow = pa.Table.from_pandas(validate_scores(table, str(path)), preserve_index=False)
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), METADATA_KEY: json.dumps(metadata or {}).encode()}
    )
    return write_parquet_atomic(path, arrow)


def read_scores(path: str | Path) -> pd.DataFrame:
    """The validated score table of a parquet file written by :func:`write_scores`."""
    import pyarrow.parquet as pq

    return validate_scores(pq.read_table(path).to_pandas(), str(path))


def read_score_metadata(path: str | Path) -> dict[str, Any]:
    """The ``metadata`` dict stored by :func:`write_scores` ({} when none)."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}
