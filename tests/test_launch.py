"""Stages relaunch under accelerate from params alone (no change to the DVC stage commands)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inpo.config import load_config
from inpo.launch import launch_command, needs_launch


def test_single_process_runs_in_place(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not needs_launch(load_config(), "inpo.stages.train")


def test_several_processes_relaunch_training_but_not_prepare(monkeypatch):
    for key in ("WORLD_SIZE", "LOCAL_RANK", "ACCELERATE_LAUNCHED"):
        monkeypatch.delenv(key, raising=False)
    cfg = load_config(overrides=["runtime.num_processes=8"])
    assert needs_launch(cfg, "inpo.stages.train") and needs_launch(cfg, "inpo.stages.generate")
    assert not needs_launch(cfg, "inpo.stages.prepare")
    cmd = launch_command(cfg, ["train", "--method", "inpo"])
    # --multi_gpu, not --cpu: `accelerate launch --cpu --num_processes N` silently starts one process
    assert cmd[1:] == [
        "launch",
        "--multi_gpu",
        "--num_processes",
        "8",
        "-m",
        "inpo.cli",
        "train",
        "--method",
        "inpo",
    ]
    monkeypatch.setenv("WORLD_SIZE", "8")  # already inside the launch: run the stage itself
    assert not needs_launch(cfg, "inpo.stages.train")


def test_accelerate_config_file_decides_the_shape(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = load_config(overrides=["runtime.accelerate_config=configs/accelerate/8gpu.yaml"])
    assert launch_command(cfg, ["sft"])[1:4] == ["launch", "--config_file", "configs/accelerate/8gpu.yaml"]


def test_num_processes_must_be_positive():
    from inpo.config import ConfigError

    with pytest.raises(ConfigError, match="runtime.num_processes"):
        load_config(overrides=["runtime.num_processes=0"])


SHIPPED = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.overrides"))
FAMILY = {
    "sd15-pickapic": "sd15",
    "sd21-pickapic": "sd2",
    "sd35-pickapic": "sd3",
    "sdxl-pickapic": "sdxl",
    "toy-flow": "toy",
    "sd15-online": "sd15",
}
ON_TOP_OF = {"sd15-online": "sd15-pickapic"}  # applied after that one (its header says so)


def test_every_shipped_config_is_tested():
    assert SHIPPED == sorted(FAMILY)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_write_valid_params(tmp_path, name):
    """`inpo params --from configs/X.overrides` validates, then writes into params.yaml (comments kept)."""
    from pathlib import Path

    from inpo.cli import main
    from inpo.config import DEFAULT_PARAMS

    params = tmp_path / "params.yaml"
    params.write_text(Path(DEFAULT_PARAMS).read_text())
    root = Path(__file__).resolve().parents[1]
    for layer in [*([ON_TOP_OF[name]] if name in ON_TOP_OF else []), name]:
        file = str(root / "configs" / f"{layer}.overrides")
        assert main(["params", "--params", str(params), "--from", file]) == 0
    cfg = load_config(params)
    assert cfg.model.family == FAMILY[name]
    assert cfg.train.grad_accum == (128 if name.endswith("pickapic") or name in ON_TOP_OF else 1)
    assert "# inpo: every setting" in params.read_text()


def test_params_refuses_a_bad_value_without_touching_the_file(tmp_path, capsys):
    from pathlib import Path

    from inpo.cli import main
    from inpo.config import DEFAULT_PARAMS

    params = tmp_path / "params.yaml"
    params.write_text(Path(DEFAULT_PARAMS).read_text())
    before = params.read_text()
    bad = tmp_path / "bad.overrides"
    bad.write_text("train.max_steps=10\nmethod.inpo.beta=-1\n")
    assert main(["params", "--params", str(params), "--from", str(bad)]) == 2
    assert "method.inpo.beta" in capsys.readouterr().err
    assert params.read_text() == before
