"""Per-model MLflow runs: the base, InPO, DPO, SFT and KTO side by side in MLflow's compare and chart views.

Under each pipeline run, one child run per model of the evaluation, named after it (``inpo``,
``dpo``, ``base``) and tagged ``kind=model``, ``method=<model>``, with the *same* metric names for
every model, so MLflow puts them in one chart and one compare table:

    win_rate/<prompt_set>/<scorer>, win_low/…, win_high/…   # vs eval.baseline, with its interval
    mean_gain/…, gain_low/…, gain_high/…, median/…, mean/…, n/…
    loss, implicit_acc, …                                    # training curves, per step
    val_…                                                    # validation, per step

Everything comes from the stages' files (``score/metrics.json``, the train stage's ``metrics.jsonl``
and ``validation.jsonl``), exactly as :mod:`inpo.tracking` logs the stage runs.

    runs = ModelRuns(client, experiment_id, parent_run_id, cfg, tags)
    runs.log_training("inpo", series)        # the train stage run's per-step Metrics
    runs.log_evaluation(score_metrics_json)
    runs.finish("FINISHED", {"dvc.lock.sha256": ...})
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import Config

MODEL_KIND = "model"


def model_metrics(flat: dict[str, float], model: str) -> dict[str, float]:
    """``score/metrics.json``'s ``model/prompt_set/metric/stat`` keys of ``model`` as
    ``stat/prompt_set/metric`` (the world's guard values ``model/prompt_set/name`` as
    ``name/prompt_set``): one name per quantity, whatever the model."""
    out: dict[str, float] = {}
    for key, value in flat.items():
        parts = key.split("/")
        if parts[0] != model:
            continue
        if len(parts) == 4:
            out[f"{parts[3]}/{parts[1]}/{parts[2]}"] = value
        elif len(parts) == 3:
            out[f"{parts[2]}/{parts[1]}"] = value
    return out


def models_in(flat: dict[str, float]) -> list[str]:
    """The models ``score/metrics.json`` has numbers for, in first-seen order."""
    return list(dict.fromkeys(k.split("/")[0] for k in flat))


def model_description(cfg: Config, model: str) -> str:
    """The run's description (MLflow's ``mlflow.note.content``): what the model is and how it was judged."""
    sampler = f"{cfg.sample.scheduler} {cfg.sample.steps} steps, guidance {cfg.sample.guidance}"
    data = f"{cfg.data.source}"
    if model == cfg.eval.baseline:
        what = f"the base model {cfg.model.base}, untrained"
    elif model in cfg.methods:
        settings = getattr(cfg.method, model, None)
        beta = getattr(settings, "beta", None)
        what = f"{model.upper()} from {cfg.model.base} on {data}" + (f", beta {beta:g}" if beta else "")
        what += f", {cfg.train.max_steps} steps at lr {cfg.train.learning_rate:g}"
        if cfg.sft.enabled:
            what += " (reference: SFT on the winners first)"
    else:
        what = f"extra model {model} ({cfg.sample.extra_models.get(model, '?')})"
    return f"{what}. Evaluated with {sampler}; win-rates against {cfg.eval.baseline}, intervals at {cfg.eval.confidence:g}."


class ModelRuns:
    """One MLflow child run per model under the pipeline run ``parent_id`` (created on first use)."""

    def __init__(
        self, client: Any, experiment_id: str, parent_id: str, cfg: Config, tags: dict[str, str]
    ) -> None:
        self.client, self.experiment_id, self.parent_id = client, experiment_id, parent_id
        self.cfg, self.tags = cfg, tags
        self.runs: dict[str, str] = {}

    def run_for(self, model: str) -> str:
        if model not in self.runs:
            tags = {
                **self.tags,
                "mlflow.parentRunId": self.parent_id,
                "mlflow.note.content": model_description(self.cfg, model),
                "kind": MODEL_KIND,
                "method": model,
            }
            run = self.client.create_run(self.experiment_id, run_name=model, tags=tags)
            self.runs[model] = str(run.info.run_id)
        return self.runs[model]

    def log_training(self, method: str, series: Sequence[Any]) -> None:
        """The training curves of ``method`` (MLflow Metrics per step, as the train stage's run got
        them) on its model run: the steps it does not hold yet (live tracking logged the others)."""
        from .tracking import _log_batches

        run_id = self.run_for(method)
        held = {
            key: {int(m.step) for m in self.client.get_metric_history(run_id, key)}
            for key in {m.key for m in series}
        }
        missing = [m for m in series if int(m.step) not in held[m.key]]
        _log_batches(self.client, run_id, metrics=missing)

    def log_evaluation(self, score_metrics: Path) -> None:
        """Every model's evaluation numbers from ``score/metrics.json`` under the shared names."""
        from mlflow.entities import Metric

        from .tracking import _log_batches, read_json

        data = read_json(score_metrics) or {}
        flat = {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}
        now = int(time.time() * 1000)
        for model in models_in(flat):
            values = model_metrics(flat, model)
            _log_batches(
                self.client, self.run_for(model), metrics=[Metric(k, v, now, 0) for k, v in values.items()]
            )

    def log_cards(self, cards: Path) -> None:
        """``cards/<method>.md`` (the report stage's evaluated model cards) as ``README.md`` on each
        method's run."""
        for card in sorted(cards.glob("*.md")):
            self.client.log_text(self.run_for(card.stem), card.read_text(), "README.md")

    def finish(self, status: str, tags: dict[str, str]) -> None:
        from .tracking import _log_batches

        for run_id in self.runs.values():
            _log_batches(self.client, run_id, tags=tags)
            self.client.set_terminated(run_id, status)
