"""`inpo prepare` from the installed console command, as DVC runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from inpo.data.fixtures import write_pickapic_fixture, write_pickapic_shard


def _inpo() -> str:
    found = Path(sys.executable).with_name("inpo")
    return str(found) if found.exists() else shutil.which("inpo") or "inpo"


def test_prepare_help_from_the_installed_command():
    result = subprocess.run([_inpo(), "prepare", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: inpo prepare" in result.stdout and "section.key=value" in result.stdout


def test_prepare_on_the_fixture_from_the_installed_command(tmp_path):
    fx = write_pickapic_fixture(tmp_path / "pairs", n_rows=20, n_ties=3, n_corrupt=3, n_shards=2, seed=4)
    outputs = tmp_path / "outputs"
    cmd = [_inpo(), "prepare", f"paths.outputs={outputs}", f"data.source={fx.root}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "20/20" in result.stderr  # the progress bar counts rows
    # 3 damaged images: one pair with both, one tie row with one → 20 - 3 ties - 1 = 16 pairs.
    summary = json.loads((outputs / "prepare" / "summary.json").read_text())
    assert summary["kept"] == 16 == len(fx.expected_kept())
    assert summary["dropped"] == {"tie": 3, "caption_too_long": 0, "corrupt_image": 1, "duplicate": 0}
    assert pq.read_table(outputs / "prepare" / "pairs.parquet").num_rows == 16
    leftovers = [p.name for p in (outputs / "prepare").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # atomic writes leave no temporary file behind


def test_prepare_reports_a_bad_label_with_file_and_row(tmp_path):
    records = [dict(caption="c", jpg_0=b"x", jpg_1=b"y", label_0=1.0, label_1=0.0)] * 3
    records = records[:2] + [dict(records[0], label_0=0.25, label_1=0.75)]
    bad = write_pickapic_shard(tmp_path / "train-0.parquet", records)
    cmd = [
        _inpo(),
        "prepare",
        "--no-progress",
        f"paths.outputs={tmp_path / 'out'}",
        f"data.source={tmp_path}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2  # a bad input (inpo.errors.InputError)
    assert f"{bad}: row 2: label_0 = 0.25; expected one of 0, 0.5, 1" in result.stderr
