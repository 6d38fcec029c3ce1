"""The pipeline contract, in one table: each stage's command, the params it reads, the code it runs,
its inputs and outputs (as :mod:`inpo.layout` functions), its metrics and plots, and what MLflow logs.

``dvc.yaml`` is generated from it (``inpo pipeline dvc``; a test checks the committed file), the
Prefect flow takes its stage order from it, :mod:`inpo.tracking` its per-stage files, ``inpo check``
its plan. Nothing else names a stage's files.

A path function takes ``(cfg, item)``: ``item`` is the method for per-method stages (``train@dpo``)
and ``""`` otherwise. ``dvc.yaml`` keeps DVC's ``${...}`` templating: the same functions are called
on a config whose path settings are the template strings (:func:`inpo.pipeline.dvc.template_config`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import layout

if TYPE_CHECKING:
    from ..config import Config

PathFn = Callable[["Config", str], Path]


def _p(fn: Callable[..., Path]) -> PathFn:
    """A layout function of ``cfg`` alone as a ``(cfg, item)`` path function."""
    return lambda cfg, item: fn(cfg)


def _m(fn: Callable[..., Path]) -> PathFn:
    """A layout function of ``(cfg, method)``."""
    return lambda cfg, item: fn(cfg, item)


@dataclass(frozen=True)
class Plot:
    path: PathFn
    x: str | None = None
    y: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class Tracked:
    """What MLflow logs of a stage, from its files: summaries (final metrics), step logs (JSON Lines
    series), artifacts (path, artifact folder) and the weights folder (a logged model)."""

    summaries: tuple[PathFn, ...] = ()
    step_logs: tuple[PathFn, ...] = ()
    artifacts: tuple[tuple[PathFn, str], ...] = ()
    weights: PathFn | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    command: str  # the `inpo` command words, e.g. "train"; run as `inpo <command> --params params.yaml`
    module: str  # the stage module: the root of its code dependencies (import closure)
    comment: str
    params: tuple[str, ...]  # params.yaml sections (or keys) it reads; "{item}" is the method
    inputs: tuple[PathFn, ...] = ()  # data dependencies (outputs of earlier stages, sources)
    outs: tuple[PathFn, ...] = ()  # cached outputs
    metrics: tuple[PathFn, ...] = ()  # uncached metrics files
    plots: tuple[Plot, ...] = ()
    tracked: Tracked = field(default_factory=Tracked)
    per_method: bool = False  # one DVC stage per entry of `methods` (train@inpo, train@dpo, ...)
    # outputs DVC must not delete before a rerun: the stage keys what it keeps itself (generate keys
    # each model's images by its weights' content and the sampler, so only what changed is redrawn)
    persist: bool = False
    option: str = ""  # extra command-line words per stage, e.g. "--method {item}"

    def declared(self, cfg: Config, item: str = "") -> list[Path]:
        """Every path the stage writes, as DVC knows it: outputs, metrics and plots."""
        return [f(cfg, item) for f in (*self.outs, *self.metrics, *(p.path for p in self.plots))]

    def dvc_names(self, cfg: Config) -> list[str]:
        return [f"{self.name}@{m}" for m in cfg.methods] if self.per_method else [self.name]


def _data_source(cfg: Config, item: str) -> Path:
    return Path(cfg.data.source)


def _toy_base(cfg: Config, item: str) -> Path:
    return Path(cfg.toy.base.out)


def _toy_weak_base(cfg: Config, item: str) -> Path:
    return Path(cfg.toy.mixed.base_out)


def _toy_flow_base(cfg: Config, item: str) -> Path:
    return Path(cfg.toy.flow.base_out)


STAGES: tuple[Stage, ...] = (
    Stage(
        "world_pairs",
        "world pairs",
        "inpo.stages.world_pairs",
        "the world's own pairs (worlds that make them: toy, toy-mixed); data.source points here",
        params=("world", "toy.seed", "toy.resolution", "toy.pairs", "toy.mixed"),
        inputs=(_toy_base, _toy_weak_base, _toy_flow_base),
        outs=(_p(layout.world_pairs_dir),),
    ),
    Stage(
        "prepare",
        "prepare",
        "inpo.stages.prepare",
        "filter pairs (ties, corrupt images, duplicates) into a pair index",
        params=("data",),
        inputs=(_data_source,),
        outs=(_p(layout.pair_index),),
        metrics=(_p(layout.prepare_summary),),
        tracked=Tracked(summaries=(_p(layout.prepare_summary),)),
    ),
    Stage(
        "sft",
        "sft",
        "inpo.stages.sft",
        "optional SFT of the reference; sft.enabled=false writes a marker and costs nothing",
        params=("world", "sft", "model", "train", "data"),
        inputs=(_p(layout.pair_index),),
        outs=(_p(layout.sft_dir),),
        tracked=Tracked(
            summaries=(_p(layout.sft_summary),),
            step_logs=(_p(layout.sft_step_log),),
            weights=_p(layout.sft_weights),
        ),
    ),
    Stage(
        "train",
        "train",
        "inpo.stages.train",
        "one stage per method of `methods`: train@inpo, train@dpo, ...",
        params=("world", "method.{item}", "train", "model", "data", "sft"),
        inputs=(_p(layout.pair_index), _p(layout.sft_dir)),
        outs=(
            _m(layout.train_weights),
            _m(layout.validation_grids),
            _m(layout.train_step_log),
            _m(layout.validation_log),
        ),
        metrics=(_m(layout.train_summary),),
        plots=(
            Plot(_m(layout.training_curve), x="step", y="loss", title="training loss (${item})"),
            Plot(_m(layout.training_curve_png)),
        ),
        tracked=Tracked(
            summaries=(_m(layout.train_summary),),
            step_logs=(_m(layout.train_step_log), _m(layout.validation_log)),
            artifacts=((_m(layout.validation_grids), "validation"), (_m(layout.training_curve), "")),
            weights=_m(layout.train_weights),
        ),
        per_method=True,
        option="--method {item}",
    ),
    Stage(
        "generate",
        "generate",
        "inpo.stages.generate",
        "images of the base and of every trained method, fixed prompts and seeds; each model's images are\n"
        "  # kept across reruns (persist) and redrawn only when its weights or the sampler changed",
        params=("methods", "model", "sft", "sample", "eval"),
        inputs=(_p(layout.train_root), _p(layout.sft_dir)),
        outs=(_p(layout.generate_dir),),
        persist=True,
    ),
    Stage(
        "score",
        "score",
        "inpo.stages.score",
        "every configured scorer on every image; medians, means, win-rates with intervals",
        params=("world", "eval"),
        inputs=(_p(layout.generate_dir),),
        outs=(_p(layout.scores_file), _p(layout.scorer_info_file)),
        metrics=(_p(layout.score_metrics),),
        tracked=Tracked(
            summaries=(_p(layout.score_metrics),),
            artifacts=((_p(layout.scores_file), ""), (_p(layout.score_metrics), "")),
        ),
    ),
    Stage(
        "report",
        "report",
        "inpo.stages.report",
        "report.md / report.html, charts and the win-rate table",
        params=("methods", "eval", "sample", "method", "model", "data", "train", "sft"),  # cards
        inputs=(_p(layout.scores_file), _p(layout.score_metrics)),
        outs=(
            _p(lambda c: layout.report_file(c, "md")),
            _p(lambda c: layout.report_file(c, "html")),
            _p(layout.report_cards_dir),
        ),
        metrics=(_p(layout.winrates_file),),
        plots=(Plot(_p(layout.report_charts_dir)),),
        tracked=Tracked(
            summaries=(_p(layout.winrates_file),),
            artifacts=(
                (_p(lambda c: layout.report_file(c, "md")), "report"),
                (_p(lambda c: layout.report_file(c, "html")), "report"),
                (_p(layout.winrates_file), "report"),
                (_p(layout.report_charts_dir), "report/charts"),
                (_p(layout.report_cards_dir), "report/cards"),
            ),
        ),
    ),
)

STAGE_BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
CLI_MODULES: tuple[str, ...] = ("inpo.cli",)  # every stage runs through the `inpo` command


def stage_of(dvc_name: str) -> tuple[Stage, str]:
    """``train@dpo`` → (the train stage, "dpo"); ``score`` → (the score stage, "")."""
    name, _, item = dvc_name.partition("@")
    if name not in STAGE_BY_NAME:
        raise ValueError(f"unknown stage {dvc_name!r}; expected one of {', '.join(STAGE_BY_NAME)}")
    return STAGE_BY_NAME[name], item


def pipeline_stages(cfg: Config, until: str = "report", root: str | Path = ".") -> list[str]:
    """DVC stage names to run, in order, through the stage kind ``until`` (``train``: every
    ``train@<method>``). ``world_pairs`` only when ``data.source`` is the world's own pairs."""
    from ..worlds import get_world

    kinds = [s.name for s in STAGES]
    if until not in kinds:
        raise ValueError(f"until={until!r}: expected one of {', '.join(kinds)}")
    chosen = STAGES[: kinds.index(until) + 1]
    planned = get_world(cfg).pairs_planned(cfg, root)
    return [n for s in chosen if s.name != "world_pairs" or planned for n in s.dvc_names(cfg)]


def tracked_files(cfg: Config, dvc_name: str) -> dict[str, Any]:
    """What MLflow logs for a stage run: ``{"summary": [...], "steps": [...], "artifacts": [(path,
    dir)], "model": path | None}``, paths relative to the workspace."""
    stage, item = stage_of(dvc_name)
    t = stage.tracked
    return {
        "summary": [f(cfg, item) for f in t.summaries],
        "steps": [f(cfg, item) for f in t.step_logs],
        "artifacts": [(f(cfg, item), d) for f, d in t.artifacts],
        "model": t.weights(cfg, item) if t.weights is not None else None,
    }
