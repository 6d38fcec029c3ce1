"""MLflow records of online rounds: one parent run per flow run (kind ``online``) and one child run
per round (kind ``online-round``, tag ``inpo.round``), with the same metric names in every round so
MLflow's compare view lines the rounds up: ``<prompt set>/<scorer>/<stat>`` of the trained model
against the base (labeller and guard win-rates with their bounds, means, guard metrics) and the
round's ``seconds/...`` and ``pairs/...``."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..metric_keys import mlflow_key
from ..tracking import (
    _client,
    _log_batches,
    ensure_experiment,
    numeric_leaves,
    owner_tags,
    pipeline_tags,
    tracking_uri,
)
from .rounds import judged_prompt_set, labellers

if TYPE_CHECKING:
    from ..config import Config


class OnlineTracker:
    def __init__(self, cfg: Config, root: str | Path, run_name: str | None = None, tags: dict[str, str] | None = None):
        from ..config import flatten

        self.cfg, self.root = cfg, Path(root).resolve()
        uri = tracking_uri(cfg, self.root)
        self.client = _client(uri)
        self.experiment_id = ensure_experiment(self.client, cfg, self.root, uri)
        all_tags = {**pipeline_tags(cfg), "kind": "online", **owner_tags(self.root), **(tags or {})}
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        self.run_id = str(run.info.run_id)
        params = {k: str(v) for k, v in flatten(cfg.online, "online.").items()}
        params.update({"world": cfg.world, "labeller": "+".join(labellers(cfg))})
        _log_batches(self.client, self.run_id, params=params)

    def log_round(self, record: dict[str, Any], cached: bool) -> str:
        """A child run for one finished round (``cached``: finished by an earlier flow run)."""
        from mlflow.entities import Metric

        k = int(record["round"])
        tags = {
            "mlflow.parentRunId": self.run_id,
            "kind": "online-round",
            "inpo.round": str(k),
            "cached": str(cached).lower(),
            **owner_tags(self.root),
        }
        run = self.client.create_run(self.experiment_id, run_name=f"round {k}", tags=tags)
        run_id = str(run.info.run_id)
        now = int(time.time() * 1000)
        judged = record["metrics"][record["method"]]  # flat: "<prompt set>/<scorer>/<stat>"
        values = {
            **{mlflow_key(key): float(v) for key, v in judged.items() if math.isfinite(float(v))},
            **numeric_leaves({"seconds": record["seconds"], "pairs": record["pairs"]}),
            "diverging": float(record.get("diverging", False)),
        }
        metrics = [Metric(key, value, now, k) for key, value in values.items()]
        params = {"round": str(k), "method": record["method"], "start": str(record["start"]), "steps": str(record["steps"])}
        _log_batches(self.client, run_id, metrics=metrics, params=params)
        guard = mlflow_key(f"{judged_prompt_set(self.cfg)}/{record['guard']}/win_rate")
        if guard in values:  # the parent's curve: the guard's win-rate per round
            self.client.log_metric(self.run_id, "guard_win_rate", values[guard], step=k)
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def finish(self, status: str = "FINISHED", note: str | None = None, figure: Path | None = None) -> None:
        """End the parent run (``figure``: the rounds' picture, logged as its artifact when it exists)."""
        if figure is not None and figure.is_file():
            self.client.log_artifact(self.run_id, str(figure))
        if note:
            self.client.set_tag(self.run_id, "stopped", note)
        self.client.set_terminated(self.run_id, status)
