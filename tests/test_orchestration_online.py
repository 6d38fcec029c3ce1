"""The deployment ``inpo/online`` end to end (issue 14, part 2): a Prefect server and the served
deployments on loopback, two online rounds of world toy on CPU with tiny settings, the flow killed
with SIGKILL in round 2 and run again: it resumes at round 2 (round 1 is not redone), and MLflow holds
a parent run with one child run per round under the same metric names (the compare view)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from inpo.params_file import write_params
from inpo.testing.workspace import git, tiny_workspace
from tests.orchestration_helpers import (
    env_for,
    flow_run,
    free_port,
    guards_of,
    prefect_server_and_serve,
    run_deployment,
)

pytestmark = pytest.mark.slow
ONLINE = [
    "world=toy",
    "model.family=toy",
    "model.pretrained=null",
    "online.steps_per_round=2",
    "online.pairs_per_prompt=1",
    "toy.pairs.steps=3",
    "sample.steps=3",
    "eval.seeds_per_prompt.toy=1",
    "eval.bootstrap_samples=200",
]


def test_online_deployment_two_rounds_killed_in_round_two_resumes_and_logs_each_round(tmp_path) -> None:
    ws = tiny_workspace(tmp_path / "ws")
    write_params(ws / "params.yaml", ONLINE)
    git(ws, "commit", "-q", "-am", "online rounds in world toy")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = env_for(ws, api, tmp_path / "prefect-home")
    online = ws / "outputs" / "online"
    with prefect_server_and_serve(ws, env, port, tmp_path):
        start = [sys.executable, "-m", "prefect", "deployment", "run", "inpo/online", "--param", "rounds=2"]
        subprocess.run(start, cwd=ws, env=env, capture_output=True, text=True, timeout=120, check=True)
        deadline = time.monotonic() + 240
        while not (online / "round-2" / "pairs" / "metadata.json").is_file():
            assert time.monotonic() < deadline, "the flow never reached round 2"
            time.sleep(0.05)
        record = json.loads((ws / ".inpo-flow.lock").read_text())
        os.kill(record["pid"], signal.SIGKILL)
        assert not guards_of(record["pid"], wait_s=15), "the round's process outlived the killed flow"
        assert not (online / "round-2" / "round.json").exists()
        first = online / "round-1" / "round.json"
        written = first.stat().st_mtime_ns

        run_id = run_deployment(env, ws, "rounds=2", deployment="inpo/online")
        assert flow_run(api, run_id)["state"]["type"] == "COMPLETED"
        assert flow_run(api, record["flow_run_id"])["state"]["type"] == "CRASHED"
    assert first.stat().st_mtime_ns == written  # round 1 was read back, not redone
    for k in (1, 2):  # each round folder is in DVC's cache, its .dvc file beside it
        dvc_file = yaml.safe_load((online / f"round-{k}.dvc").read_text())
        assert dvc_file["outs"][0]["path"] == f"round-{k}" and dvc_file["outs"][0]["nfiles"] > 5
    summary = json.loads((online / "summary.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    assert summary["rounds"][1]["start"] == summary["rounds"][0]["weights"]
    for one in summary["rounds"]:
        judged = one["metrics"]["inpo"]
        assert 0.0 <= judged["toy/oracle/win_rate"] <= 1.0
        assert judged["toy/oracle_strict/win_low"] <= judged["toy/oracle_strict/win_rate"]
        assert one["pairs"]["pairs"] > 0 and one["seconds"]["sampling"] > 0

    from mlflow import MlflowClient

    from inpo.config import load_config
    from inpo.tracking import experiment_name, tracking_uri

    cfg = load_config(ws / "params.yaml")
    client = MlflowClient(tracking_uri(cfg, ws))
    experiment = client.get_experiment_by_name(experiment_name(cfg))
    parents = client.search_runs([experiment.experiment_id], "tags.kind = 'online' and attributes.status = 'FINISHED'")
    assert len(parents) == 1
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'", order_by=["tags.`inpo.round` ASC"]
    )
    assert [c.data.tags["inpo.round"] for c in children] == ["1", "2"]
    assert [c.data.tags["cached"] for c in children] == ["true", "false"]  # round 1 finished before the kill
    names = [set(c.data.metrics) for c in children]
    assert names[0] == names[1] and {"toy/oracle/win_rate", "toy/oracle_strict/win_low"} <= names[0]
    assert client.get_metric_history(parents[0].info.run_id, "guard_win_rate")[-1].step == 2
    assert [a.path for a in client.list_artifacts(parents[0].info.run_id)] == ["rounds.png"]
    killed = client.search_runs([experiment.experiment_id], "attributes.status = 'KILLED'")
    assert [r.data.tags["kind"] for r in killed] == ["online"]  # the killed flow's parent run
