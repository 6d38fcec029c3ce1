"""A non-editable install (a built wheel, outside any checkout) finds its default params.yaml and
the shipped toy base (issue 12, part 5)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "params.yaml", "inpo", "evaluation", "flows")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built as a wheel (from a copy: the build leaves nothing in the checkout) and
    unpacked into a plain folder, as ``pip install`` would."""
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", "dist", "./src"]
    subprocess.run(build, cwd=base, check=True, capture_output=True)
    (wheel,) = (base / "dist").glob("inpo-*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(base / "site")
    return base / "site"


def test_wheel_carries_the_checkouts_defaults(installed: Path) -> None:
    assert (installed / "inpo/defaults/params.yaml").read_bytes() == (ROOT / "params.yaml").read_bytes()
    assert (installed / "inpo/assets/toy-base/unet/config.json").is_file()
    assert (installed / "evaluation/assets/parti_prompts.tsv").is_file()


def test_installed_package_reads_its_defaults_outside_a_checkout(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import json, inpo; from inpo.config import DEFAULT_PARAMS, load_config; c = load_config(); "
        "print(json.dumps([inpo.__file__, str(DEFAULT_PARAMS), c.model.base, c.toy.mixed.base_out]))"
    )
    env = {**os.environ, "PYTHONPATH": str(installed)}  # ahead of the checkout's editable install
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    module, params, base, weak = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(module).is_relative_to(installed)
    assert Path(params) == installed / "inpo/defaults/params.yaml"
    assert Path(base) == installed / "inpo/assets/toy-base" and Path(weak) == installed / "inpo/assets/toy-weak-base"
    config = subprocess.run(
        [sys.executable, "-m", "inpo.cli", "config", "train.max_steps=7"],
        cwd=tmp_path, env=env, check=True, capture_output=True, text=True,
    )
    assert "max_steps: 7" in config.stdout and str(installed / "inpo/assets/toy-base") in config.stdout
