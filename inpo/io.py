"""Atomic writers: a file or folder appears complete or not at all.

Every writer builds its output beside the destination (``.<name>.tmp-<pid>`` for a file, a
``.<name>.tmp-*`` folder for a directory) and renames it into place with ``os.replace``; on error
the temporary is removed and the destination is left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from PIL import Image


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path (``.<name>.tmp-<pid>``); on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(out_dir: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``out_dir`` (an old one is removed)."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """``obj`` as JSON (indent 1, keys in insertion order) plus a final newline."""
    return write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def write_png_atomic(path: str | Path, image: Image.Image) -> Path:
    """A PIL image as PNG."""
    with atomic_file(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def write_parquet_atomic(path: str | Path, table: pa.Table) -> Path:
    """A pyarrow table (with its schema metadata) as parquet."""
    import pyarrow.parquet as pq

    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)
