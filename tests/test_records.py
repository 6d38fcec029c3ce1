"""Records users can trust (issue 12, part 1): where MLflow logs to, how experiments open in its UI,
stage runs spanning the stage's real time, the loss curve as a picture, and what the flow says
about ``dvc status`` afterwards."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from flows.recovery import RECOVERY_FILE, run_parameters
from flows.workspace import status_note
from inpo.config import DEFAULT_PARAMS, load_config
from inpo.curves import write_curve_png
from inpo.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, PipelineTracker, experiment_name, tracking_uri


def test_tracking_uri_follows_config_then_environment_then_default(tmp_path, monkeypatch) -> None:
    cfg = load_config(DEFAULT_PARAMS)
    assert tracking_uri(cfg, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5005")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "my-sweep")
    assert tracking_uri(cfg, tmp_path) == "http://127.0.0.1:5005"
    assert experiment_name(cfg) == "my-sweep"
    own = load_config(DEFAULT_PARAMS, ["tracking.uri=sqlite:///own.db", "tracking.experiment=mine"])
    assert tracking_uri(own, tmp_path) == f"sqlite:///{tmp_path.resolve()}/own.db"  # the config wins
    assert experiment_name(own) == "mine"


def test_experiments_open_as_model_training_and_stage_runs_span_the_stage(tmp_path) -> None:
    cfg = load_config(DEFAULT_PARAMS, [f"tracking.uri=sqlite:///{tmp_path}/mlruns.db"])
    tracker = PipelineTracker(cfg, tmp_path)
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "finetuning"
    tracker.client.delete_experiment_tag(tracker.experiment_id, EXPERIMENT_KIND_TAG)
    again = PipelineTracker(cfg, tmp_path)  # an experiment made before the tag existed gets it
    assert again.client.get_experiment(again.experiment_id).tags[EXPERIMENT_KIND_TAG] == "finetuning"

    tracker.start(run_name="timed")
    run_id = tracker.log_stage("prepare", cached=False, start_ms=1_700_000_000_000, end_ms=1_700_000_042_500)
    info = tracker.client.get_run(run_id).info
    assert (info.start_time, info.end_time) == (1_700_000_000_000, 1_700_000_042_500)
    tracker.finish()


def test_loss_curve_is_written_as_a_png(tmp_path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text(
        "".join(f'{{"step": {i}, "loss": {0.7 - 0.01 * i}, "implicit_acc": 0.5}}\n' for i in range(5))
    )
    png = write_curve_png(log, tmp_path / "loss.png", "inpo training")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 900 and height == 320  # two panels (loss, implicit accuracy) at 100 dpi


def test_status_note_names_the_stages_and_why() -> None:
    ran = ["prepare", "train@dpo", "generate"]
    assert "clean" in status_note({}, ["method.dpo.beta=2500"], kept=False, ran=ran)
    assert "could not" in status_note(None, [], kept=False, ran=ran)
    changed = {"train@dpo": [{"changed params": {}}], "generate": [], "world_pairs": []}
    note = status_note(changed, ["method.dpo.beta=2500"], False, ran)
    assert "generate, train@dpo differ from params.yaml" in note and "method.dpo.beta=2500" in note
    assert "keep_overrides" in note and "not part of this run: world_pairs" in note
    outside_only = status_note({"world_pairs": []}, [], kept=False, ran=ran)
    assert outside_only.startswith("dvc status: clean for the stages this run ran")
    assert "world_pairs" in outside_only


@pytest.mark.parametrize("keep", [False, True])
def test_run_parameters_restores_or_keeps_the_overrides(tmp_path: Path, keep: bool) -> None:
    params = tmp_path / "params.yaml"
    params.write_bytes(DEFAULT_PARAMS.read_bytes())
    pristine = params.read_bytes()
    with run_parameters(tmp_path, ["method.dpo.beta=2500"], keep=keep):
        assert load_config(params).method.dpo.beta == 2500
    assert (params.read_bytes() == pristine) is not keep
    assert load_config(params).method.dpo.beta == (2500 if keep else 5000)
    assert not (tmp_path / RECOVERY_FILE).exists()
    with pytest.raises(RuntimeError):  # a failed run never keeps them
        with run_parameters(tmp_path, ["method.dpo.beta=1234"], keep=True):
            raise RuntimeError("stage failed")
    assert load_config(params).method.dpo.beta == (2500 if keep else 5000)


def test_an_edit_made_during_a_run_is_never_overwritten(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_bytes(DEFAULT_PARAMS.read_bytes())
    pristine = params.read_bytes()
    said: list[str] = []
    with run_parameters(tmp_path, ["method.dpo.beta=2500"], log=said.append):
        edited = params.read_bytes().replace(b"beta: 2500", b"beta: 1234")
        params.write_bytes(edited)  # the user's own edit, while the flow runs
    assert params.read_bytes() == edited
    assert (tmp_path / "params.yaml.before-flow-run").read_bytes() == pristine
    assert any("edited during the flow run" in s for s in said)


def test_model_metrics_share_one_name_per_quantity() -> None:
    from inpo.model_runs import model_description, model_metrics, models_in

    flat = {
        "base/toy/oracle/median": 0.4,
        "inpo/toy/oracle/median": 0.5,
        "inpo/toy/oracle/win_rate": 0.7,
        "inpo/toy/oracle/win_low": 0.6,
        "dpo/parti/clip/win_rate": 0.55,
        "base/toy/diversity": 0.3,
    }
    assert models_in(flat) == ["base", "inpo", "dpo"]
    assert model_metrics(flat, "inpo") == {
        "median/toy/oracle": 0.5,
        "win_rate/toy/oracle": 0.7,
        "win_low/toy/oracle": 0.6,
    }
    assert model_metrics(flat, "base") == {"median/toy/oracle": 0.4, "diversity/toy": 0.3}
    cfg = load_config(DEFAULT_PARAMS)
    said = model_description(cfg, "inpo")
    assert said.startswith("INPO from") and "beta 5000" in said and f"guidance {cfg.sample.guidance}" in said
    assert "untrained" in model_description(cfg, "base")


def test_model_card_says_what_the_weights_are() -> None:
    import yaml

    from inpo.model_card import model_card

    cfg = load_config(DEFAULT_PARAMS)
    card = model_card(cfg, "inpo", cfg.model.base, {"method": "inpo", "steps": 10, "loss": 0.69})
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["base_model"] == cfg.model.base and meta["library_name"] == "diffusers" and "inpo" in meta["tags"]
    assert "DDIM-InPO" in body and '"beta": 5000.0' in body and '"steps": 10' in body
    assert "UNet2DConditionModel.from_pretrained" in body
    lora = load_config(DEFAULT_PARAMS, ["model.lora.enabled=true"])
    assert "pipe.load_lora_weights" in model_card(lora, "dpo", "x", {})
    win = {"win_rate": 0.625, "win_low": 0.5, "win_high": 0.75, "mean_gain": 0.0123, "beats": True}
    evaluated = model_card(cfg, "inpo", cfg.model.base, None, {"toy": {"oracle": win}})
    assert "| toy | oracle | 0.625 | [0.500, 0.750] | +0.0123 | yes |" in evaluated
    sampler = f"{cfg.sample.scheduler}, {cfg.sample.steps} steps, guidance {cfg.sample.guidance}"
    assert sampler in evaluated and "outputs/train/inpo/summary.json" in evaluated
    assert "| toy |" not in card and "outputs/report/cards/" in card  # the train stage's card points there


@pytest.mark.parametrize(("flag", "lib", "bars_off"), [("-q", "error", True), ("-vv", "debug", False)])
def test_verbosity_flags_reach_the_libraries(monkeypatch, capsys, flag, lib, bars_off) -> None:
    import logging

    from inpo.cli import main

    for key in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY", "TQDM_DISABLE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)  # restored after
    assert main(["config", flag, "train.max_steps=3"]) == 0
    assert "max_steps: 3" in capsys.readouterr().out
    assert os.environ["TRANSFORMERS_VERBOSITY"] == os.environ["DIFFUSERS_VERBOSITY"] == lib
    assert ("TQDM_DISABLE" in os.environ) is bars_off


def test_live_curves_log_while_training_once_per_step(tmp_path, monkeypatch) -> None:
    from inpo.train.live import LiveCurves

    cfg = load_config(DEFAULT_PARAMS, [f"tracking.uri=sqlite:///{tmp_path}/mlruns.db"])
    tracker = PipelineTracker(cfg, tmp_path)
    tracker.start(run_name="live")
    env = tracker.live_env("train@inpo")
    assert tracker.live_env("score") == {} and set(env) == {
        "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"
    }
    for key, value in env.items():  # what the train stage's process gets from the flow
        monkeypatch.setenv(key, value)
    live = LiveCurves("inpo").start()
    assert live.active
    for step in range(3):
        live.log_step(step, {"epoch": 0, "loss": 0.7 - step / 100, "note": "text"})
    live.log_validation(2, {"loss": 0.5})
    live.finish()
    monkeypatch.setenv("MLFLOW_RUN_ID", env["MLFLOW_RUN_ID"])  # a new process (MLflow's end_run unsets it)
    resumed = LiveCurves("inpo").start()  # a resumed run re-does steps 2..3 after its checkpoint
    for step in (2, 3):
        resumed.log_step(step, {"epoch": 0, "loss": 0.7 - step / 100})
    resumed.finish()
    history = tracker.client.get_metric_history(env["MLFLOW_RUN_ID"], "loss")
    assert sorted(m.step for m in history) == [0, 1, 2, 3]  # step 2 once
    assert [m.step for m in tracker.client.get_metric_history(env["MLFLOW_RUN_ID"], "val_loss")] == [2]
    assert not LiveCurves("dpo", env["MLFLOW_RUN_ID"]).start().active  # inpo's run: not dpo's
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/missing/nowhere.db")
    with pytest.warns(UserWarning, match="live MLflow tracking"):  # a dead store: training goes on
        assert not LiveCurves("inpo", env["MLFLOW_RUN_ID"]).start().active
    tracker.finish()
