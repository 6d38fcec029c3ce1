"""The Prefect flow behind the deployment ``inpo/online``: online rounds, one task per round.

    prefect deployment run inpo/online -p rounds=2 -p 'overrides=["online.steps_per_round=50"]'

Each round task runs ``inpo online online.rounds=<k> <overrides>`` under :mod:`inpo.guard` (killing
the flow ends it): finished rounds are read back, never redone (their ``round.json``), so a flow run
killed in round k resumes at round k. Each finished round becomes a child MLflow run of the flow's
parent run (kind ``online``), so the rounds sit side by side in MLflow's compare view; a round an
earlier flow run finished is tagged ``cached``. ``version``: each finished round folder goes into
DVC's cache (``dvc add outputs/online/round-<k>``: its pairs, pair index, weights and scores, one
``.dvc`` file per round for git). The workspace is locked for the run; params.yaml is not edited (the
overrides travel on the command line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.inpo_flow import WORKSPACE_WAIT_S
from flows.recovery import recover_killed_run
from flows.workspace import StageError, project_root, stream_command, workspace_lock


@task(name="online-round", task_run_name="round-{k}", cache_policy=NO_CACHE)
def online_round(root: str, k: int, overrides: list[str]) -> dict[str, Any]:
    """Rounds 1..k (the finished ones are read back); the summary ``inpo online`` wrote."""
    from inpo.config import load_config
    from inpo.online.rounds import online_dir

    cmd = ["inpo", "online", "--params", "params.yaml", "--no-progress", f"online.rounds={k}", *overrides]
    rc, tail = stream_command(cmd, Path(root), get_run_logger().info)
    if rc != 0:
        raise StageError(f"round {k} failed (exit code {rc}):\n{tail}", transient=False)
    cfg = load_config(Path(root) / "params.yaml", overrides)
    return dict(json.loads((Path(root) / online_dir(cfg) / "summary.json").read_text()))


@task(name="dvc-add", task_run_name="dvc-add-round-{k}", cache_policy=NO_CACHE)
def version_round(root: str, k: int, folder: str) -> None:
    """``dvc add`` a finished round's folder (idempotent: an unchanged folder is not re-hashed)."""
    rc, tail = stream_command(["dvc", "add", "-q", folder], Path(root), get_run_logger().info)
    if rc != 0:
        raise StageError(f"dvc add {folder} failed (exit code {rc}):\n{tail}", transient=False)


@flow(name="inpo", log_prints=True)
def online(
    overrides: list[str] | None = None,
    rounds: int | None = None,
    track: bool = True,
    version: bool = True,
    workspace: str | None = None,
    workspace_wait_s: float = WORKSPACE_WAIT_S,
) -> list[dict[str, Any]]:
    """Online rounds with config overrides (``rounds``: ``online.rounds``); returns the round records."""
    from inpo.config import ConfigError, load_config
    from inpo.online.rounds import ROUND_FILE, round_dir

    root = Path(workspace).resolve() if workspace else project_root()
    logger = get_run_logger()
    run_id = str(flow_run.get_id())
    all_overrides = ([f"online.rounds={rounds}"] if rounds is not None else []) + list(overrides or [])
    try:
        cfg = load_config(root / "params.yaml", all_overrides)
    except ConfigError as err:
        raise ValueError(f"bad parameters: {err}") from None
    lock = workspace_lock(root, holder=f"flow run {run_id}", wait_s=workspace_wait_s, log=logger.info, flow_run_id=run_id)
    with lock as previous:
        recover_killed_run(root, previous, logger.warning, cfg)
        finished_before = {k for k in range(1, cfg.online.rounds + 1) if (root / round_dir(cfg, k) / ROUND_FILE).is_file()}
        tracker = None
        if track and cfg.tracking.enabled:
            from inpo.online.tracking import OnlineTracker

            tracker = OnlineTracker(cfg, root, run_name=flow_run.get_name(), tags={"prefect.flow_run_id": run_id})
        records: list[dict[str, Any]] = []
        try:
            for k in range(1, cfg.online.rounds + 1):
                summary = online_round(str(root), k, all_overrides)
                for record in summary["rounds"][len(records) :]:
                    records.append(record)
                    done = int(record["round"])
                    if version:
                        version_round(str(root), done, str(round_dir(cfg, done)))
                    if tracker is not None:
                        tracker.log_round(record, cached=done in finished_before)
                if summary["stopped"] != "rounds" or len(summary["rounds"]) < k:
                    logger.info("stopped after round %d: %s", len(records), summary["stopped"])
                    break
        except BaseException:
            if tracker is not None:
                tracker.finish("FAILED")
            raise
        if tracker is not None:
            from inpo.online.rounds import online_dir

            tracker.finish("FINISHED", note=summary["stopped"], figure=root / online_dir(cfg) / "rounds.png")
        return records
