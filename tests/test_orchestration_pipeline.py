"""End to end on a tiny world: Prefect server + served deployment ``inpo/full`` → DVC stages → MLflow.

One shared pipeline run (module fixture): a project copy (fresh git repo) with a tiny SD1.5-shaped
model and a 12-pair fixture; a real Prefect server on loopback; ``python -m flows.serve`` serving
``inpo/full``; one flow run through ``report`` (prepare, sft, train@inpo, train@dpo with 2 steps
each, then generate, score and report on the toy prompts with 1 seed each). The other tests read
what that run left: the Prefect API, ``dvc repro`` in the same copy, MLflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from inpo.params_file import write_params
from inpo.testing.workspace import git, tiny_workspace
from tests.orchestration_helpers import (
    declared_in_lock,
    dvc,
    dvc_json,
    env_for,
    flow_run,
    free_port,
    guards_of,
    images_written,
    prefect_server_and_serve,
    run_deployment,
    start_flow_until_a_stage_runs,
    start_mlflow_server,
    stop,
    task_names,
    wait_http,
)

pytestmark = pytest.mark.slow
UNTIL = "report"
STAGES = ["prepare", "sft", "train@inpo", "train@dpo", "generate", "score", "report"]
# 1 seed per toy prompt (not 16) and 200 bootstrap samples keep generate/score/report to seconds
FAST_EVAL = ["eval.seeds_per_prompt.toy=1", "eval.bootstrap_samples=200"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    t0 = time.perf_counter()
    base = tmp_path_factory.mktemp("orchestration")
    ws = tiny_workspace(base / "ws")
    write_params(ws / "params.yaml", FAST_EVAL)
    git(ws, "commit", "-q", "-am", "fast evaluation")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = env_for(ws, api, base / "prefect-home")
    with prefect_server_and_serve(ws, env, port, base):
        t1 = time.perf_counter()
        run_id = run_deployment(env, ws, f"until={UNTIL}")
        timings = {"setup_s": t1 - t0, "flow_s": time.perf_counter() - t1}
        yield {"ws": ws, "api": api, "env": env, "run_id": run_id, "timings": timings, "base": base}


def test_flow_run_completes_through_the_api(pipeline: dict) -> None:
    run = flow_run(pipeline["api"], pipeline["run_id"])
    assert run["state"]["type"] == "COMPLETED", (
        run["state"],
        (pipeline["base"] / "serve.log").read_text()[-4000:],
    )
    names = task_names(pipeline["api"], pipeline["run_id"])
    # preflight, then one task per DVC stage, each followed by its MLflow logging task
    assert names == ["preflight"] + [n for s in STAGES for n in (s, f"track-{s}")]
    ws = pipeline["ws"]
    lock = ws / "dvc.lock"
    assert lock.is_file()
    assert sorted(
        json.loads((ws / f"outputs/train/{m}/summary.json").read_text())["steps"] for m in ("inpo", "dpo")
    ) == [2, 2]
    # every method vs the base, for each metric of the toy prompts (oracle + its prompt-following part)
    winrates = json.loads((ws / "outputs/report/winrates.json").read_text())
    assert sorted(winrates) == ["dpo", "inpo"]
    for by_set in winrates.values():
        for w in by_set["toy"].values():
            assert 0.0 <= w["win_low"] <= w["win_rate"] <= w["win_high"] <= 1.0
    print("timings", pipeline["timings"])


def test_every_file_a_stage_wrote_is_a_dvc_output(pipeline: dict) -> None:
    """So a run-cache restore brings back every file MLflow logs from (issue 12): nothing under
    outputs/ lies outside what dvc.lock records; git sees the uncached metrics, not the cached data."""
    ws = pipeline["ws"]
    declared = declared_in_lock(ws)
    written = [p.relative_to(ws).as_posix() for p in (ws / "outputs").rglob("*") if p.is_file()]
    written = [p for p in written if not p.endswith(".gitignore")]
    stray = [p for p in written if not any(p == d or p.startswith(d + "/") for d in declared)]
    assert written and not stray, stray
    seen_by_git = git(ws, "status", "--porcelain", "--untracked-files=all", "outputs").split("\n")
    seen = {line[3:] for line in seen_by_git if line}
    assert "outputs/train/inpo/summary.json" in seen and "outputs/train/inpo/loss.png" in seen
    assert not any(p.startswith("outputs/train/inpo/unet") for p in seen)  # DVC's own .gitignore
    assert "base_model: model" in (ws / "outputs/train/inpo/unet/README.md").read_text()  # its card


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("method.inpo.beta=-1", "method.inpo.beta"),
        ("method.inpo.betta=3", "method.inpo.betta"),
        ("data.source=missing/pairs", "data.source"),
    ],
)
def test_bad_override_fails_before_any_stage(pipeline: dict, override: str, named: str) -> None:
    lock_before = (pipeline["ws"] / "dvc.lock").read_bytes()
    run_id = run_deployment(pipeline["env"], pipeline["ws"], f"overrides={json.dumps([override])}")
    run = flow_run(pipeline["api"], run_id)
    assert run["state"]["type"] == "FAILED"
    assert named in run["state"]["message"], run["state"]["message"]
    assert task_names(pipeline["api"], run_id) == ["preflight"]  # nothing after the pre-flight ran
    assert (pipeline["ws"] / "dvc.lock").read_bytes() == lock_before


def test_dvc_repro_skips_unchanged_and_reruns_only_downstream(pipeline: dict) -> None:
    ws, env = pipeline["ws"], pipeline["env"]
    again = dvc(ws, env, "repro", UNTIL)
    assert "Running stage" not in again
    assert again.count("didn't change, skipping") == len(STAGES)

    before = images_written(ws)
    write_params(ws / "params.yaml", ["method.dpo.beta=2500"])
    changed = dvc(ws, env, "repro", UNTIL)
    after = images_written(
        ws
    )  # generate reran, but only dpo's images were redrawn (issue 12: persist + keys)
    assert (
        after["base"] == before["base"] and after["inpo"] == before["inpo"] and after["dpo"] > before["dpo"]
    )
    ran = [line.split("'")[1] for line in changed.splitlines() if line.startswith("Running stage")]
    # β of dpo changes only dpo's training and what reads its UNet (not prepare, sft or train@inpo);
    # score and report follow only if the 8-bit images changed (DVC compares output hashes: with
    # 2 steps at lr 3e-6 they may not)
    assert ran[:2] == ["train@dpo", "generate"]
    assert ran[2:] in ([], ["score"], ["score", "report"])
    assert "method.dpo.beta" in dvc(ws, env, "params", "diff")


def test_mlflow_client_sees_params_metrics_artifacts(pipeline: dict) -> None:
    from mlflow import MlflowClient

    from inpo.config import load_config
    from inpo.testing.workspace import git
    from inpo.tracking import experiment_name, tracking_uri

    ws = pipeline["ws"]
    cfg = load_config(ws / "params.yaml")
    client = MlflowClient(tracking_uri=tracking_uri(cfg, ws))
    exp = client.get_experiment_by_name(experiment_name(cfg))
    assert exp is not None and exp.name == "inpo/pairs/model"
    assert exp.tags["mlflow.experimentKind"] == "finetuning"
    parents = client.search_runs([exp.experiment_id], "tags.kind = 'pipeline'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["method.inpo.beta"] == "5000.0"
    assert parent.data.params["git.commit"] == git(ws, "rev-parse", "HEAD").strip()
    assert len(parent.data.params["dvc.lock.sha256"]) == 64
    assert parent.data.tags["world"] == "pairs" and parent.data.tags["base_model"] == "model"

    children = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.kind = 'stage'"
    )
    by_name = {r.info.run_name: r for r in children}
    assert sorted(by_name) == sorted(STAGES)
    train = by_name["train@inpo"]
    assert train.data.tags["method"] == "inpo" and train.data.tags["cached"] == "false"
    # the stage run spans the stage (a tiny training through dvc takes seconds), inside its parent
    assert train.info.end_time - train.info.start_time > 1000
    assert parent.info.start_time <= train.info.start_time <= train.info.end_time <= parent.info.end_time
    assert "clean" in parent.data.tags["dvc.status"]  # no overrides: dvc.lock matches params.yaml
    rows = (ws / "outputs/train/inpo/metrics.jsonl").read_text().splitlines()
    losses = [json.loads(row)["loss"] for row in rows]
    history = {m.step: m.value for m in client.get_metric_history(train.info.run_id, "loss")}
    assert history == pytest.approx({0: losses[0], 1: losses[1]})  # per step, from metrics.jsonl
    arts = {a.path for a in client.list_artifacts(train.info.run_id, "model")}
    assert arts == {"model/pipeline-config.yaml"}  # the weights: once, as the logged model
    assert train.data.tags["model.logged"] == "copy"
    files = {a.path for a in client.list_logged_model_artifacts(train.data.tags["model.id"], "unet")}
    assert "unet/diffusion_pytorch_model.safetensors" in files
    assert by_name["prepare"].data.metrics["kept"] == 10.0  # 12 rows − 1 tie − 1 corrupt pair
    # one run per model under the pipeline run, every model under the same metric names
    metrics = json.loads((ws / "outputs/score/metrics.json").read_text())
    models = client.search_runs(
        [exp.experiment_id], f"tags.kind = 'model' and tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    by_model = {r.info.run_name: r for r in models}
    assert sorted(by_model) == ["base", "dpo", "inpo"]
    for name in ("inpo", "dpo"):
        run = by_model[name]
        for stat in ("win_rate", "win_low", "win_high", "median"):
            assert run.data.metrics[f"{stat}/toy/oracle"] == pytest.approx(
                metrics[f"{name}/toy/oracle/{stat}"]
            )
        assert (
            run.data.tags["method"] == name
            and run.data.tags["git.commit"] == parent.data.params["git.commit"]
        )
        assert len(run.data.tags["dvc.lock.sha256"]) == 64
        assert "guidance" in run.data.tags["mlflow.note.content"]
    assert "win_rate/toy/oracle" not in by_model["base"].data.metrics  # the baseline has medians only
    assert by_model["base"].data.metrics["median/toy/oracle"] == pytest.approx(
        metrics["base/toy/oracle/median"]
    )
    curve = sorted(client.get_metric_history(by_model["inpo"].info.run_id, "loss"), key=lambda m: m.step)
    assert [m.step for m in curve] == [0, 1] and [m.value for m in curve] == pytest.approx(losses[:2])
    assert all(m.timestamp <= train.info.end_time for m in curve)  # logged live, while it trained
    assert not any(k.startswith(("inpo/", "dpo/")) for k in parent.data.metrics)  # one naming scheme
    report = {a.path for a in client.list_artifacts(by_name["report"].info.run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/winrates.json"} <= report
    card = client.download_artifacts(by_model["dpo"].info.run_id, "README.md", str(pipeline["base"]))
    assert "| toy | oracle |" in open(card).read()  # the evaluated model card on the model's run


def test_mlflow_server_rest_api(pipeline: dict) -> None:
    from inpo.config import load_config
    from inpo.tracking import tracking_uri

    ws = pipeline["ws"]
    cfg = load_config(ws / "params.yaml")
    port = free_port()
    server = start_mlflow_server(ws, pipeline["env"], tracking_uri(cfg, ws), port)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", 90, server)
        exp = httpx.get(
            f"{url}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": "inpo/pairs/model"},
            timeout=10,
        ).json()["experiment"]
        body = {
            "experiment_ids": [exp["experiment_id"]],
            "filter": "tags.kind = 'stage' and tags.stage = 'train'",
        }
        runs = httpx.post(f"{url}/api/2.0/mlflow/runs/search", json=body, timeout=10).json()["runs"]
        assert sorted(r["info"]["run_name"] for r in runs) == ["train@dpo", "train@inpo"]
        for r in runs:
            metrics = {m["key"]: m["value"] for m in r["data"]["metrics"]}
            params = {p["key"]: p["value"] for p in r["data"]["params"]}
            assert 0.0 < metrics["loss"] < 1.0 and params["train.max_steps"] == "2"
    finally:
        stop(server)


def test_cached_stage_is_logged_from_its_files(pipeline: dict) -> None:
    from inpo.config import load_config
    from inpo.tracking import PipelineTracker

    ws = pipeline["ws"]
    tracker = PipelineTracker(load_config(ws / "params.yaml"), ws)
    tracker.start(run_name="replay")
    run_id = tracker.log_stage("train@inpo", cached=True)
    tracker.finish()
    run = tracker.client.get_run(run_id)
    assert run.data.tags["cached"] == "true"
    summary = json.loads((ws / "outputs/train/inpo/summary.json").read_text())
    assert run.data.metrics["implicit_acc"] == pytest.approx(summary["implicit_acc"])


def test_a_flow_killed_mid_stage_leaves_nothing_behind(pipeline: dict) -> None:
    """SIGKILL of the flow run's process during `dvc repro prepare`: the stage's process tree ends
    with it; the next flow run restores params.yaml, marks the MLflow run KILLED and the Prefect
    run is Crashed (issue 11, part 2)."""
    ws, env, api = pipeline["ws"], pipeline["env"], pipeline["api"]
    pristine = (ws / "params.yaml").read_bytes()
    flow_pid = start_flow_until_a_stage_runs(ws, env, "until=prepare", 'overrides=["data.max_pairs=7"]')
    killed_id = json.loads((ws / ".inpo-flow.lock").read_text())["flow_run_id"]
    os.kill(flow_pid, signal.SIGKILL)
    assert b"max_pairs: 7" in (ws / "params.yaml").read_bytes()  # left edited by the killed run
    assert not guards_of(flow_pid, wait_s=15), "the stage's process tree outlived the killed flow"

    run_id = run_deployment(env, ws, "until=prepare", 'overrides=["data.max_pairs=9"]')
    assert flow_run(api, run_id)["state"]["type"] == "COMPLETED"
    assert (ws / "params.yaml").read_bytes() == pristine
    assert not (ws / ".inpo-flow-params.json").exists()
    assert flow_run(api, killed_id)["state"]["type"] == "CRASHED"
    from mlflow import MlflowClient

    from inpo.config import load_config
    from inpo.tracking import experiment_name, tracking_uri

    cfg = load_config(ws / "params.yaml")
    client = MlflowClient(tracking_uri(cfg, ws))
    experiment = client.get_experiment_by_name(experiment_name(cfg))
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'KILLED'")
    assert len(runs) == 1 and runs[0].data.tags["inpo.pid"] == str(flow_pid)
    assert runs[0].info.end_time is not None
    assert not client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
    # params.yaml is the user's again, so DVC sees prepare changed: the flow says so, and why
    latest = client.search_runs(
        [experiment.experiment_id], "tags.kind = 'pipeline'", order_by=["attributes.start_time DESC"]
    )[0]
    assert (
        "prepare" in latest.data.tags["dvc.status"] and "data.max_pairs=9" in latest.data.tags["dvc.status"]
    )
    assert "prepare" in dvc_json(ws, env, "status")


def test_dvc_experiments_show_and_diff_the_metrics(pipeline: dict) -> None:
    """``dvc exp run -S`` twice, then ``dvc exp show`` / ``dvc metrics diff`` give the numbers
    (the metrics live in git-tracked files, dvc.lock is committed)."""
    ws, env = pipeline["ws"], pipeline["env"]
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "the pipeline's results")
    committed = json.loads((ws / "outputs/prepare/summary.json").read_text())["kept"]
    assert committed not in (6, 8)
    for n in (6, 8):
        dvc(ws, env, "exp", "run", "-S", f"data.max_pairs={n}", "-n", f"pairs-{n}", "prepare")
    exps = {}
    for commit in dvc_json(ws, env, "exp", "show"):
        for exp in commit.get("experiments") or []:
            data = exp["revs"][0]["data"]
            summary = data["metrics"]["outputs/prepare/summary.json"]["data"]
            exps[exp["name"]] = summary["kept"]
    assert exps == {"pairs-6": 6, "pairs-8": 8}
    kept = dvc_json(ws, env, "metrics", "diff")["outputs/prepare/summary.json"]["kept"]
    assert kept["old"] == committed and kept["new"] == 8  # the workspace holds the last experiment


def test_two_pipeline_runs_compare_per_method_and_weights_are_logged_once(pipeline: dict) -> None:
    """A second pipeline run over the workspace's outputs (every stage as DVC left it): MLflow's
    compare view finds each method's win-rates in both pipeline runs under one name; unchanged
    weights are referenced, not uploaded again (issue 12)."""
    from mlflow import MlflowClient

    from inpo.config import load_config
    from inpo.tracking import WEIGHTS_TAG, experiment_name, log_workspace, tracking_uri

    ws = pipeline["ws"]
    cfg = load_config(ws / "params.yaml")
    client = MlflowClient(tracking_uri(cfg, ws))
    exp = client.get_experiment_by_name(experiment_name(cfg))
    second = log_workspace(cfg, ws, STAGES, cached=True, run_name="second look")
    inpo_runs = client.search_runs(
        [exp.experiment_id],
        "tags.kind = 'model' and tags.method = 'inpo' and metrics.`win_rate/toy/oracle` >= 0",
    )
    parents = {r.data.tags["mlflow.parentRunId"] for r in inpo_runs}
    assert second in parents and len(parents) == 2  # the fixture's flow run and this one
    train = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{second}' and tags.stage = 'train'"
    )
    by_stage = {r.info.run_name: r for r in train}
    inpo_stage = by_stage["train@inpo"]  # its weights were logged by the first run
    assert inpo_stage.data.tags["model.logged"] == "reference"
    sha = inpo_stage.data.tags[WEIGHTS_TAG]
    logged = client.search_logged_models([exp.experiment_id], filter_string=f"tags.{WEIGHTS_TAG} = '{sha}'")
    assert len(logged) == 1 and str(logged[0].model_id) == inpo_stage.data.tags["model.id"]


def test_gpu_work_pool_files_are_accepted_by_prefect(pipeline: dict) -> None:
    """deploy/pools/*.json and prefect.yaml's GPU deployments through `prefect work-pool create` and
    `prefect deploy` (no Docker or GPU: the server checks job variables against the pool template)."""
    from prefect.utilities.templating import apply_values

    ws, api = pipeline["ws"], pipeline["api"]
    env = {**pipeline["env"], "INPO_REPOSITORY": "https://example.invalid/inpo.git"}
    env |= {"INPO_IMAGE": "registry.invalid/inpo:test", "MLFLOW_TRACKING_URI": "http://mlflow.invalid:5000"}
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    for pool, kind in (("inpo-docker-gpu", "docker"), ("inpo-k8s-gpu", "kubernetes")):
        template = f"deploy/pools/{kind}-gpu.json"
        create = [*prefect, "work-pool", "create", pool, "--type", kind, "--base-job-template", template]
        subprocess.run(create, cwd=ws, env=env, check=True, capture_output=True, timeout=120)
    out = subprocess.run(
        [*prefect, "deploy", "--name", "full-docker-gpu", "--name", "full-k8s-gpu"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    k8s = httpx.get(f"{api}/deployments/name/inpo/full-k8s-gpu", timeout=10).json()
    assert k8s["job_variables"]["image"] == "registry.invalid/inpo:test" and k8s["parameters"] == {
        "dvc_push": True
    }
    assert k8s["pull_steps"][0]["prefect.deployments.steps.git_clone"]["repository"].startswith(
        "https://example"
    )
    pool = httpx.get(f"{api}/work_pools/inpo-k8s-gpu", timeout=10).json()["base_job_template"]
    defaults = {k: v.get("default") for k, v in pool["variables"]["properties"].items()}
    job = apply_values(pool["job_configuration"], {**defaults, **k8s["job_variables"]})
    container = job["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8 and container["image"].endswith(
        "inpo:test"
    )
    docker = httpx.get(f"{api}/deployments/name/inpo/full-docker-gpu", timeout=10).json()
    pool = httpx.get(f"{api}/work_pools/inpo-docker-gpu", timeout=10).json()["base_job_template"]
    defaults = {k: v.get("default") for k, v in pool["variables"]["properties"].items()}
    job = apply_values(pool["job_configuration"], {**defaults, **docker["job_variables"]})
    assert job["container_create_kwargs"]["device_requests"][0]["capabilities"] == [["gpu"]]
