"""The Prefect flow ``inpo`` (deployment ``full``): one task per DVC stage of the pipeline.

    prefect deployment run inpo/full -p 'overrides=["method.inpo.beta=2000"]' -p max_steps=50

Order: lock the workspace (one flow run at a time) → clear what a killed earlier run left
(``flows.recovery``: its ``params.yaml`` edit, its RUNNING MLflow runs, its Prefect state) → pre-flight (config, weights, data: a bad
override fails here, before any training) → write the overrides into ``params.yaml`` the way
``dvc exp run -S`` does → ``dvc repro --single-item <stage>`` per stage (unchanged stages are
skipped by DVC; ``dvc.lock`` records what ran) → each stage logged to MLflow from its files, tagged
``cached`` when DVC skipped it → ``params.yaml`` restored (the overrides belong to this run only;
``dvc.lock`` and MLflow keep them; a recovery record restores it after a kill). Stage commands run
under ``inpo.guard``, so killing the flow ends them too. Stage output goes to the Prefect run logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.recovery import recover_killed_run, run_parameters
from flows.workspace import (
    PIPELINE_END,
    StageError,
    dvc_status,
    named_overrides,
    pipeline_stages,
    project_root,
    run_check,
    run_dvc_stage,
    status_note,
    stream_command,
    workspace_lock,
)

STAGE_RETRIES = 2
WORKSPACE_WAIT_S = 12 * 3600.0  # a second flow run in one workspace queues this long, then fails


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a stage only for failures a retry can fix (see ``flows.workspace.TRANSIENT_PATTERNS``)."""
    try:
        state.result()
    except StageError as err:
        return err.transient
    except Exception:
        return False
    return False


@task(name="preflight", task_run_name="preflight", cache_policy=NO_CACHE)
def preflight(root: str, overrides: list[str]) -> list[str]:
    """Validate the config with the overrides, then ``inpo check`` (weights, data, memory); return the stages."""
    from inpo.config import ConfigError, load_config

    logger = get_run_logger()
    try:
        cfg = load_config(Path(root) / "params.yaml", overrides)
    except ConfigError as err:
        raise ValueError(f"bad parameters: {err}") from None
    logger.info("overrides: %s", overrides or "(none)")
    run_check(Path(root), overrides, logger.info)
    return list(cfg.methods)


@task(
    name="stage",
    task_run_name="{stage}",
    cache_policy=NO_CACHE,
    retries=STAGE_RETRIES,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_transient,
)
def dvc_stage(root: str, stage: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    logger = get_run_logger()
    result = run_dvc_stage(Path(root), stage, logger.info, env=env)
    logger.info(
        "%s: %s in %.1f s", stage, "cached (skipped by DVC)" if result.cached else "ran", result.seconds
    )
    return {
        "stage": stage,
        "cached": result.cached,
        "seconds": round(result.seconds, 2),
        "started_ms": result.started_ms,
        "ended_ms": result.ended_ms,
    }


@task(name="dvc-push", cache_policy=NO_CACHE, retries=STAGE_RETRIES, retry_delay_seconds=10)
def push_results(root: str) -> None:
    """``dvc push``: data, weights and outputs to the configured remote."""
    rc, tail = stream_command(["dvc", "push"], Path(root), get_run_logger().info)
    if rc != 0:
        raise StageError(f"dvc push failed (exit code {rc}):\n{tail}", transient=True)


@task(name="track", task_run_name="track-{stage}", cache_policy=NO_CACHE)
def track_stage(tracker: Any, stage: str, result: dict[str, Any]) -> str:
    """The stage's MLflow run, spanning the stage's real start and end."""
    return tracker.log_stage(
        stage, cached=result["cached"], start_ms=result["started_ms"], end_ms=result["ended_ms"]
    )


@flow(name="inpo", log_prints=True)
def inpo(
    overrides: list[str] | None = None,
    methods: list[str] | None = None,
    beta: float | None = None,
    inversion_steps: int | None = None,
    max_steps: int | None = None,
    model: str | None = None,
    prompt_sets: list[str] | None = None,
    until: str = PIPELINE_END,
    track: bool = True,
    workspace: str | None = None,
    keep_overrides: bool = False,
    workspace_wait_s: float = WORKSPACE_WAIT_S,
    dvc_push: bool = False,
) -> list[dict[str, Any]]:
    """Run the pipeline with config overrides (dotted ``section.key=value`` strings; the named
    parameters are shortcuts for common ones and come first, so ``overrides`` wins). params.yaml
    is restored at the end (``keep_overrides``: left with the overrides, so that ``dvc status`` is
    clean for what ran); the flow says what ``dvc status`` reports afterwards. A second run in the
    same workspace queues for up to ``workspace_wait_s`` seconds (0: fail at once). ``dvc_push``:
    ``dvc push`` the results to the DVC remote at the end (the GPU deployments, whose containers
    are thrown away)."""
    import yaml

    from inpo.config import load_config

    root = Path(workspace).resolve() if workspace else project_root()
    params_path = root / "params.yaml"
    logger = get_run_logger()
    run_id = str(flow_run.get_id())
    lock = workspace_lock(
        root, holder=f"flow run {run_id}", wait_s=workspace_wait_s, log=logger.info, flow_run_id=run_id
    )
    with lock as previous:
        recover_killed_run(root, previous, logger.warning, _config_or_none(params_path))
        raw = yaml.safe_load(params_path.read_text()) or {}
        all_overrides = named_overrides(raw, methods, beta, inversion_steps, max_steps, model, prompt_sets)
        all_overrides += list(overrides or [])
        preflight(str(root), all_overrides)
        results: list[dict[str, Any]] = []
        tracker = None
        with run_parameters(root, all_overrides, keep=keep_overrides, log=logger.warning):
            try:
                cfg = load_config(params_path)
                stages = pipeline_stages(cfg, root, until)
                logger.info("stages: %s", ", ".join(stages))
                if track and cfg.tracking.enabled:
                    from inpo.tracking import PipelineTracker

                    tracker = PipelineTracker(cfg, root)
                    tracker.start(run_name=flow_run.get_name(), tags={"prefect.flow_run_id": run_id})
                for stage in stages:
                    live = tracker.live_env(stage) if tracker is not None else None
                    result = dvc_stage(str(root), stage, live)
                    results.append(result)
                    if tracker is not None:
                        track_stage(tracker, stage, result)
            except BaseException:
                if tracker is not None:
                    tracker.finish("FAILED")
                raise
        if dvc_push:
            push_results(str(root))
        note = status_note(dvc_status(root), all_overrides, kept=keep_overrides, ran=stages)
        logger.info(note)
        if tracker is not None:
            tracker.client.set_tag(tracker.run_id, "dvc.status", note)
            tracker.finish("FINISHED")
        return results


def _config_or_none(params_path: Path) -> Any:
    """The workspace's config for the orphan clean-up (None if it does not load: preflight says why)."""
    from inpo.config import ConfigError, load_config

    try:
        return load_config(params_path)
    except ConfigError:
        return None
