"""MLflow tracking of pipeline runs, read from the stages' output files.

One MLflow run per pipeline run (in one experiment per world/model), one nested run per stage.
Everything is logged *from the files the stages wrote* (``summary.json``, ``metrics.jsonl``,
``metrics.json``, ``winrates.json``, the report and weights), so a stage that DVC skipped is logged
exactly like one that ran, and tagged ``cached=true``.

    tracker = PipelineTracker(cfg, root=".")
    tracker.start(run_name="beta-2000")
    tracker.log_stage("train@inpo", cached=False)
    tracker.finish("FINISHED")

Backend: ``tracking.uri`` (default ``sqlite:///mlruns.db``, relative to the project root) and
artifacts under ``tracking.artifact_location``; an ``http(s)://`` URI of an ``mlflow server`` works
the same (artifacts then go where the server puts them).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from . import layout
from .config import Config, flatten, to_dict
from .metric_keys import mlflow_key as metric_key
from .model_runs import ModelRuns
from .pipeline.stages import tracked_files

# MLflow 3's UI opens an experiment by this tag: "finetuning" is one of its machine-learning kinds
# (runs, metrics, charts), not the GenAI view (traces, token usage) it guesses for untagged ones
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "finetuning"
WEIGHTS_TAG = "weights_sha256"  # on logged models and stage runs: the weights' content (inpo.identity)
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
BATCH = 100  # params/tags per log_batch call (MLflow's limit); metrics: 1000


# ---------------------------------------------------------------- pure helpers (no MLflow)


DEFAULT_URI = "sqlite:///mlruns.db"


def tracking_uri(cfg: Config, root: str | Path = ".") -> str:
    """The MLflow store, as MLflow's own tools choose it: ``tracking.uri`` when set (like
    ``mlflow.set_tracking_uri`` in code), else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlruns.db``;
    a relative ``sqlite:///file`` or plain path is anchored at ``root`` (the project)."""
    uri = cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    root = Path(root).resolve()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{root / uri[len('sqlite:///') :]}"
    if "://" not in uri:
        return (root / uri).as_uri()
    return uri


def is_local_uri(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def world_name(cfg: Config) -> str:
    """The world's label: ``toy`` for the embedded world, the data source's name for real data."""
    from .worlds import get_world

    return get_world(cfg).label(cfg)


def experiment_name(cfg: Config) -> str:
    """``tracking.experiment``, else ``$MLFLOW_EXPERIMENT_NAME``, else ``inpo/<world>/<base model>``
    (one experiment per world/model)."""
    if cfg.tracking.experiment:
        return cfg.tracking.experiment
    if os.environ.get("MLFLOW_EXPERIMENT_NAME"):
        return os.environ["MLFLOW_EXPERIMENT_NAME"]
    return f"inpo/{world_name(cfg)}/{Path(cfg.model.base.rstrip('/')).name}"


def pipeline_tags(cfg: Config) -> dict[str, str]:
    """Tags for the MLflow compare view: base model, family, dataset, world, methods."""
    return {
        "base_model": cfg.model.base,
        "model_family": cfg.model.family,
        "dataset": cfg.data.source,
        "world": world_name(cfg),
        "methods": ",".join(cfg.methods),
        "lora": str(cfg.model.lora.enabled).lower(),
    }


def file_sha256(path: str | Path) -> str | None:
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def git_state(root: str | Path) -> dict[str, str]:
    """The commit of ``root`` and whether the worktree differs from it (empty strings outside git)."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else False
    return {"git.commit": commit, "git.dirty": str(dirty).lower()}


def run_params(cfg: Config, root: str | Path, with_lock: bool = True) -> dict[str, str]:
    """Flattened config + git commit (+ dvc.lock hash), as MLflow param strings."""
    params: dict[str, Any] = dict(flatten(cfg))
    params.update(git_state(root))
    if with_lock:
        params["dvc.lock.sha256"] = file_sha256(Path(root) / "dvc.lock") or ""
    return {k: str(v)[:MAX_PARAM_CHARS] for k, v in params.items()}


def numeric_leaves(obj: Any, prefix: str = "") -> dict[str, float]:
    """Finite numeric leaves of nested JSON as ``{"a.b.0": value}`` (bools count as 0/1; strings skipped)."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        items: Iterable[tuple[Any, Any]] = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        if isinstance(obj, bool | int | float) and math.isfinite(float(obj)):
            out[metric_key(prefix.rstrip("."))] = float(obj)
        return out
    for key, value in items:
        out.update(numeric_leaves(value, f"{prefix}{key}."))
    return out


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def step_records(path: Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl`` (empty when absent)."""
    from .curves import read_jsonl

    return read_jsonl(path) if path.is_file() else []


# ---------------------------------------------------------------- MLflow I/O


def _client(uri: str) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(client: Any, cfg: Config, root: str | Path, uri: str) -> str:
    """The id of the pipeline's experiment, created (with a local artifact folder) if missing."""
    name = experiment_name(cfg)
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return str(found.experiment_id)
    location = None
    if is_local_uri(uri):
        base = Path(root).resolve() / cfg.tracking.artifact_location
        location = (base / metric_key(name).replace("/", "-").replace(" ", "_")).as_uri()
    try:
        tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        return str(client.create_experiment(name, artifact_location=location, tags=tags))
    except Exception:  # created concurrently by another process
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _log_batches(
    client: Any,
    run_id: str,
    metrics: Sequence[Any] = (),
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    from mlflow.entities import Param, RunTag

    params_list = [Param(k, v) for k, v in (params or {}).items()]
    tags_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    for i in range(0, len(params_list), BATCH):
        client.log_batch(run_id, params=params_list[i : i + BATCH], synchronous=True)
    for i in range(0, len(tags_list), BATCH):
        client.log_batch(run_id, tags=tags_list[i : i + BATCH], synchronous=True)
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000], synchronous=True)


def _step_series(step_paths: list[Path]) -> tuple[list[Any], int]:
    """MLflow Metric objects of the per-step JSON Lines (validation keys prefixed ``val_``), and the
    last training step."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    out = []
    last_step = 0
    for path in step_paths:
        prefix = "val_" if path.name.startswith("validation") else ""
        for record in step_records(path):
            step = int(record.get("step", 0))
            last_step = max(last_step, step) if not prefix else last_step
            for key, value in numeric_leaves({k: v for k, v in record.items() if k != "step"}).items():
                out.append(Metric(f"{prefix}{key}", value, now, step))
    return out, last_step


def _final_values(summary_paths: list[Path], last_step: int) -> list[Any]:
    """MLflow Metric objects of the summaries, at the last step (the same value as that step's record)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(key, value, now, last_step)
        for path in summary_paths
        for key, value in numeric_leaves(read_json(path) or {}).items()
    ]


def owner_tags(root: Path) -> dict[str, str]:
    """Who runs a pipeline run: host, pid and workspace (how a later run tells an orphan)."""
    return {"inpo.host": socket.gethostname(), "inpo.pid": str(os.getpid()), "inpo.workspace": str(root)}


class PipelineTracker:
    """One parent MLflow run per pipeline run; :meth:`log_stage` adds a nested run per stage."""

    def __init__(self, cfg: Config, root: str | Path = ".", uri: str | None = None) -> None:
        self.cfg, self.root = cfg, Path(root).resolve()
        self.uri = uri or tracking_uri(cfg, self.root)
        self.client = _client(self.uri)
        self.experiment_id = ensure_experiment(self.client, cfg, self.root, self.uri)
        self.run_id: str | None = None
        self.stage_runs: dict[str, str] = {}
        self._models: ModelRuns | None = None  # the pipeline run's per-model runs (start() makes it)

    def start(self, run_name: str | None = None, tags: dict[str, str] | None = None) -> str:
        all_tags = {**pipeline_tags(self.cfg), "kind": "pipeline", **owner_tags(self.root), **(tags or {})}
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        self.run_id = str(run.info.run_id)
        model_tags = {**pipeline_tags(self.cfg), **git_state(self.root), **owner_tags(self.root)}
        self._models = ModelRuns(self.client, self.experiment_id, self.run_id, self.cfg, model_tags)
        # dvc.lock changes while the stages run: its hash is logged by finish()
        _log_batches(self.client, self.run_id, params=run_params(self.cfg, self.root, with_lock=False))
        self.client.log_text(
            self.run_id, yaml.safe_dump(to_dict(self.cfg), sort_keys=False), "config/params.yaml"
        )
        return self.run_id

    def log_stage(
        self,
        stage: str,
        cached: bool,
        status: str = "FINISHED",
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> str:
        """A nested run for ``stage`` from its output files; evaluation metrics also go to the parent.
        ``start_ms`` / ``end_ms``: when the stage really ran (epoch ms; default: now)."""
        if self.run_id is None:
            raise RuntimeError("PipelineTracker.log_stage: call start() first")
        name, _, method = stage.partition("@")
        tags = {
            **pipeline_tags(self.cfg),
            "mlflow.parentRunId": self.run_id,
            "kind": "stage",
            "stage": name,
            "cached": str(cached).lower(),
        }
        if method:
            tags["method"] = method
        run = self.client.create_run(self.experiment_id, run_name=stage, tags=tags, start_time=start_ms)
        run_id = str(run.info.run_id)
        files = tracked_files(self.cfg, stage)
        at = self.root.joinpath  # stage paths are relative to the project root, not to the cwd
        series, last_step = _step_series([at(p) for p in files["steps"]])
        metrics = series + _final_values([at(p) for p in files["summary"]], last_step)
        _log_batches(self.client, run_id, metrics=metrics, params=run_params(self.cfg, self.root))
        if name == "train":  # the method's own run: its curves beside the other methods'
            self.models.log_training(method, series)
        if name == "score":  # every model's numbers under shared names, one run per model
            self.models.log_evaluation(at(files["summary"][0]))
        if name == "report":  # each method's evaluated model card, as its run's README.md
            self.models.log_cards(at(str(layout.report_cards_dir(self.cfg))))
        for path, artifact_dir in files["artifacts"]:
            self._log_path(run_id, at(path), artifact_dir)
        if files["model"] is not None and at(files["model"]).is_dir():
            self.log_model(run_id, at(files["model"]), stage)
        self.client.set_terminated(run_id, status, end_time=end_ms)
        self.stage_runs[stage] = run_id
        return run_id

    def live_env(self, stage: str) -> dict[str, str]:
        """The environment with which ``train@<method>`` logs its curves live to the method's model
        run (``tracking.live``; see :mod:`inpo.train.live`); empty for other stages."""
        name, _, method = stage.partition("@")
        if name != "train" or not self.cfg.tracking.live:
            return {}
        return {
            "MLFLOW_TRACKING_URI": self.uri,
            "MLFLOW_EXPERIMENT_NAME": self.client.get_experiment(self.experiment_id).name,
            "MLFLOW_RUN_ID": self.models.run_for(method),
        }

    @property
    def models(self) -> ModelRuns:
        if self._models is None:
            raise RuntimeError("PipelineTracker: call start() first")
        return self._models

    def log_model(self, run_id: str, weights_dir: Path, stage: str) -> str:
        """The UNet (or LoRA adapter) as an MLflow logged model, once per content: weights already
        logged in this experiment (same sha256, e.g. a stage DVC skipped) are referenced, not
        copied again. The stage run gets ``model.id`` / ``model.logged`` (copy or reference) tags
        and the pipeline config; returns the logged model's id."""
        from .identity import HashCache, tree_sha256

        cache = HashCache(layout.hash_cache_file(self.cfg))
        sha = tree_sha256(weights_dir, cache)
        cache.save()
        found = self.client.search_logged_models(
            [self.experiment_id], filter_string=f"tags.{WEIGHTS_TAG} = '{sha}'", max_results=1
        )
        if found:
            model_id, how = str(found[0].model_id), "reference"
        else:
            model = self.client.create_logged_model(
                self.experiment_id,
                name=stage.replace("@", "-"),
                source_run_id=run_id,
                tags={"stage": stage, WEIGHTS_TAG: sha, "lora": str(self.cfg.model.lora.enabled).lower()},
            )
            self.client.log_model_artifacts(model.model_id, str(weights_dir), "unet")
            self.client.finalize_logged_model(model.model_id, "READY")
            model_id, how = str(model.model_id), "copy"
        _log_batches(self.client, run_id, tags={"model.id": model_id, "model.logged": how, WEIGHTS_TAG: sha})
        config_text = yaml.safe_dump(to_dict(self.cfg), sort_keys=False)
        self.client.log_text(run_id, config_text, "model/pipeline-config.yaml")
        return model_id

    def _log_path(self, run_id: str, path: Path, artifact_dir: str) -> None:
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_dir or None)
        elif path.is_file():
            self.client.log_artifact(run_id, str(path), artifact_dir or None)

    def finish(self, status: str = "FINISHED") -> None:
        """Log the final dvc.lock's hash (the record of what ran) and close the pipeline run."""
        if self.run_id is not None:
            lock = file_sha256(self.root / "dvc.lock") or ""
            _log_batches(self.client, self.run_id, params={"dvc.lock.sha256": lock})
            if self._models is not None:
                self._models.finish(status, {"dvc.lock.sha256": lock})
            if lock:
                self.client.log_artifact(self.run_id, str(self.root / "dvc.lock"))
            self.client.set_terminated(self.run_id, status)


def log_workspace(
    cfg: Config, root: str | Path, stages: list[str], cached: bool = True, run_name: str | None = None
) -> str:
    """Log the outputs already in ``root`` as one pipeline run (e.g. after a plain ``dvc repro``)."""
    tracker = PipelineTracker(cfg, root)
    run_id = tracker.start(run_name=run_name)
    for stage in stages:
        tracker.log_stage(stage, cached=cached)
    tracker.finish()
    return run_id
