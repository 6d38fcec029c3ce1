"""Live training curves in MLflow, through accelerate's MLflow tracker.

When the train stage's environment names an MLflow run (``MLFLOW_RUN_ID``, as MLflow's own tools
read it; the Prefect flow sets it to the method's model run, with ``MLFLOW_TRACKING_URI`` and
``MLFLOW_EXPERIMENT_NAME``), every step's metrics row (the one ``metrics.jsonl`` gets) and every
validation row (keys prefixed ``val_``) is logged to that run as it is written. Steps the run
already holds (a resumed run) are not logged twice. Tracking never stops training: a failing
server gets one warning and the rest of the run logs to the files only, from which the flow
completes the run's curves afterwards.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

RUN_ENV = "MLFLOW_RUN_ID"


class LiveCurves:
    """accelerate's ``MLflowTracker`` on the run named by ``$MLFLOW_RUN_ID`` (inactive without it, and
    on a run tagged with another ``method``)."""

    def __init__(self, method: str, run_id: str | None = None) -> None:
        self.method = method
        self.run_id = run_id if run_id is not None else os.environ.get(RUN_ENV) or None
        self.tracker: Any = None
        self.logged_up_to = -1  # the last step the run already had, per series
        self.val_logged_up_to = -1

    @property
    def active(self) -> bool:
        return self.tracker is not None

    def start(self) -> LiveCurves:
        if self.run_id is None:
            return self
        try:
            from accelerate.tracking import MLflowTracker
            from mlflow.tracking import MlflowClient

            client = MlflowClient()
            run = client.get_run(self.run_id)
            if run.data.tags.get("method", self.method) != self.method:  # another method's model run
                print(f"[{self.method}] not tracking live: MLflow run {self.run_id} is another method's")
                return self
            experiment = client.get_experiment(run.info.experiment_id).name
            self.logged_up_to = _last_step(client, self.run_id, "loss")
            self.val_logged_up_to = _last_step(client, self.run_id, "val_loss")
            tracker = MLflowTracker(experiment_name=experiment, run_id=self.run_id)
            tracker.start()
            self.tracker = tracker
        except Exception as exc:  # noqa: BLE001 - tracking must not stop training
            self._give_up(exc)
        return self

    def log_step(self, step: int, row: dict[str, Any]) -> None:
        """One ``metrics.jsonl`` row (``step``: the 0-based update) unless the run has it already."""
        if self.active and step > self.logged_up_to:
            self._log(_numeric(row), step)

    def log_validation(self, done: int, row: dict[str, Any]) -> None:
        """One ``validation.jsonl`` row (``done``: updates done), keys prefixed ``val_``."""
        if self.active and done > self.val_logged_up_to:
            self._log({f"val_{k}": v for k, v in _numeric(row).items()}, done)

    def finish(self) -> None:
        if self.active:
            try:
                self.tracker.finish()
            except Exception as exc:  # noqa: BLE001
                self._give_up(exc)
            self.tracker = None

    def _log(self, values: dict[str, float], step: int) -> None:
        try:
            self.tracker.log(values, step=step)
        except Exception as exc:  # noqa: BLE001
            self._give_up(exc)

    def _give_up(self, exc: Exception) -> None:
        warnings.warn(
            f"live MLflow tracking of run {self.run_id} stopped ({type(exc).__name__}: {exc}); "
            "the curves stay in metrics.jsonl / validation.jsonl and are logged from there",
            stacklevel=3,
        )
        self.tracker = None


def _numeric(row: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in row.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
    }


def _last_step(client: Any, run_id: str, key: str) -> int:
    return max((int(m.step) for m in client.get_metric_history(run_id, key)), default=-1)
