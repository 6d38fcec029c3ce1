"""Content identities of what a result depends on, without rehashing gigabytes on every start.

- a file or local folder: the sha256 of its bytes (a folder: of its files' relative paths and
  sha256s), cached in a JSON file by (absolute path, size, mtime_ns), so an unchanged file is hashed
  once and a rewritten one (another SFT run, a DVC checkout of other weights) is hashed again;
- a hub model: its id and the revision it resolves to in the local hub cache (the configured
  revision when it is not cached yet: the load will fetch exactly that);
- a stage's code: the sha256 of the files of its import closure, the same set ``dvc.yaml`` tracks.

    cache = HashCache(Path("checkpoints/cache/sha256.json"))
    location_identity("outputs/sft/unet", None, cache)   # {"sha256": "9c1f…"}
    location_identity("runwayml/stable-diffusion-v1-5", "main", cache)  # {"hub": …, "revision": "1d0c…"}
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .io import write_json_atomic

SKIP_PARTS = ("__pycache__", ".git", ".ipynb_checkpoints")


class HashCache:
    """sha256 of files, remembered by (absolute path, size, mtime_ns) in ``path`` (JSON; None: memory)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        if path is not None and path.is_file():
            try:
                self._entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self._entries = {}  # a damaged cache is only a cache: rehash

    def file_sha256(self, file: Path) -> str:
        st = file.stat()
        key = str(file.resolve())
        hit = self._entries.get(key)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return str(hit[2])
        digest = sha256_file(file)
        self._entries[key] = [st.st_size, st.st_mtime_ns, digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        if self.path is not None and self._dirty:
            write_json_atomic(self.path, self._entries)
            self._dirty = False


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_files(path: Path) -> list[Path]:
    """The files of a file or folder (sorted; caches and VCS folders left out)."""
    if path.is_file():
        return [path]
    return sorted(
        p for p in path.rglob("*") if p.is_file() and not any(part in SKIP_PARTS for part in p.parts)
    )


def tree_sha256(path: str | Path, cache: HashCache) -> str:
    """sha256 over (relative path, sha256) of every file of ``path`` (a file: its own sha256)."""
    path = Path(path)
    if path.is_file():
        return cache.file_sha256(path)
    h = hashlib.sha256()
    for file in tree_files(path):
        h.update(f"{file.relative_to(path).as_posix()}\0{cache.file_sha256(file)}\n".encode())
    return h.hexdigest()


def hub_revision(repo_id: str, revision: str | None) -> str:
    """The commit ``revision`` of hub repo ``repo_id`` resolves to in the local hub cache, or the
    configured revision (``main`` when None) if nothing is cached."""
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id, revision=revision, local_files_only=True)
        return Path(folder).name
    except Exception:  # not cached, offline, or not a hub id: the load fetches what is configured
        return revision or "main"


def location_identity(location: str | None, revision: str | None, cache: HashCache) -> Any:
    """A local file/folder by content; a hub id by id and resolved revision; None stays None."""
    if location is None:
        return None
    path = Path(location).expanduser()
    if path.exists():
        return {"sha256": tree_sha256(path, cache)}
    return {"hub": location, "revision": hub_revision(location, revision)}


def code_sha256(files: list[str], root: Path) -> str:
    """sha256 over the ``.py`` files and data files under ``files`` (paths relative to ``root``)."""
    h = hashlib.sha256()
    for name in sorted(files):
        base = root / name
        if not base.exists():
            h.update(f"{name}\0missing\n".encode())
            continue
        for file in tree_files(base):
            if base.is_dir() and file.suffix not in (".py", ".txt", ".json", ".yaml", ".csv"):
                continue
            rel = file.relative_to(root).as_posix()
            h.update(f"{rel}\0{sha256_file(file)}\n".encode())
    return h.hexdigest()


def short(obj: Any, n: int = 12) -> str:
    """``n`` hex digits of a JSON-able description."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def project_root() -> Path:
    """The folder holding the ``inpo`` package (the checkout, for an editable install)."""
    return Path(os.path.dirname(os.path.abspath(__file__))).parent
