"""A throw-away copy of the project as a fresh git repository (for DVC / Prefect tests and dry runs).

DVC needs a git repository for ``exp run`` and ``params diff``; tests never run ``dvc`` in the
developer's checkout. The copy holds the files git would see (tracked + untracked, not ignored),
committed once, plus a symlink to the project's ``.venv`` so stage commands find ``inpo`` and ``dvc``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "inpo",
    "GIT_AUTHOR_EMAIL": "inpo@localhost",
    "GIT_COMMITTER_NAME": "inpo",
    "GIT_COMMITTER_EMAIL": "inpo@localhost",
}


def project_files(root: str | Path = PROJECT_ROOT) -> list[str]:
    """Paths git would commit from ``root`` (tracked and untracked-but-not-ignored, existing files)."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True, capture_output=True
    ).stdout.decode()
    return [p for p in out.split("\0") if p and (Path(root) / p).is_file()]


def git(cwd: str | Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def copy_project(
    dst: str | Path, root: str | Path = PROJECT_ROOT, exclude: tuple[str, ...] = ("tests/",)
) -> Path:
    """Copy the project into ``dst`` as a new git repo with one commit; return ``dst``."""
    root, dst = Path(root), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for rel in project_files(root):
        if rel.startswith(exclude):
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    if (root / ".venv").is_dir() and not (dst / ".venv").exists():
        (dst / ".venv").symlink_to(root / ".venv")
    git(dst, "init", "-q", "-b", "main")
    git(dst, "add", "-A")
    git(dst, "commit", "-q", "-m", "workspace copy")
    return dst


TINY_OVERRIDES = (
    "world=pickapic",
    "model.family=sd15",
    "model.pretrained=model",
    "data.source=pairs",
    "train.max_steps=2",
    "train.pairs_per_device=2",
    "train.checkpoint_every=2",
    "train.validate_every=2",
    "sample.steps=2",
    "method.inpo.inversion.steps=2",
    "eval.scorers=[oracle]",
)


def tiny_workspace(dst: str | Path, root: str | Path = PROJECT_ROOT) -> Path:
    """A project copy whose params.yaml runs the pipeline on a tiny SD1.5-shaped model (``model/``)
    and a 12-pair Pick-a-Pic-shaped fixture (``pairs/``), committed, ready for ``dvc repro``."""
    from inpo.data.fixtures import write_pickapic_fixture
    from inpo.params_file import write_params
    from inpo.testing.tiny_models import write_tiny_sd15

    dst = copy_project(dst, root)
    write_tiny_sd15(dst / "model", words=["a", "quiet", "lake", "at", "dawn", "prompt"])
    write_pickapic_fixture(dst / "pairs", n_rows=12, n_ties=1, n_corrupt=1, n_shards=1)
    write_params(dst / "params.yaml", list(TINY_OVERRIDES))
    git(dst, "add", "-A")
    git(dst, "commit", "-q", "-m", "tiny world")
    return dst
