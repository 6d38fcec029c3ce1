"""``inpo online``: online rounds (docs/online_rounds.md) — sample pairs from the current policy,
label them with the world's labeller, train ``online.method`` for a round, evaluate against the base
with the labeller and the held-out guard; resumable round by round. One round is the pipeline's own
stages run with the round's config (:func:`run_round`); the plan, records and stopping rule are
:mod:`inpo.online.rounds`."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def preflight(cfg: Config) -> None:
    from ..online.rounds import preflight as rounds_preflight

    rounds_preflight(cfg)


def run_distributed(cfg: Config, command: str, folder: Path, in_process: Callable[[], Any]) -> None:
    """Run stage ``inpo <command>`` with ``cfg``: in this process, or, when the stage is multi-process
    (``runtime.num_processes > 1`` or ``runtime.accelerate_config``, :mod:`inpo.launch`), under
    ``accelerate launch`` from ``folder/<command>.params.yaml`` (the round's whole config, written first)."""
    from ..config import to_dict
    from ..io import write_json_atomic
    from ..launch import needs_launch, relaunch

    if not needs_launch(cfg, f"inpo.stages.{command}"):
        in_process()
        return
    params = folder / f"{command}.params.yaml"
    write_json_atomic(params, to_dict(cfg))  # JSON is YAML: `--params` reads it
    rc = relaunch(cfg, [command, "--params", str(params)])
    if rc != 0:
        raise RuntimeError(f"inpo {command} --params {params} failed under accelerate (exit code {rc})")


def run_round(cfg: Config, k: int, start: str | None, progress: bool = True) -> dict[str, Any]:
    """Round ``k`` from the UNet folder ``start`` (None: the starting model): pairs → prepare →
    train → generate → score → ``round.json`` (written last; a round with it is never redone)."""
    import torch

    from .. import layout
    from ..data import read_pair_index
    from ..io import write_json_atomic
    from ..online.rounds import (
        ROUND_FILE,
        make_round_pairs,
        round_configs,
        round_dir,
        round_record,
        round_weights,
    )
    from ..threads import torch_threads
    from ..worlds import get_world
    from . import generate, prepare, score, train

    done = round_dir(cfg, k) / ROUND_FILE
    if done.is_file():
        return dict(json.loads(done.read_text()))
    train_cfg, eval_cfg = round_configs(cfg, k, start)
    pairs = Path(train_cfg.data.source)
    began = time.perf_counter()
    if not (pairs / "metadata.json").is_file():
        with torch_threads(cfg.runtime.cpu_threads):
            policy = get_world(train_cfg).round_policy(train_cfg)
            make_round_pairs(train_cfg, policy, k, pairs, progress)
            del policy
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # the round's training loads its own copy
    if not layout.pair_index(train_cfg).is_file():
        prepare.run(train_cfg, progress=progress)
    trained = time.perf_counter()
    method = cfg.online.method
    if not (layout.train_dir(train_cfg, method) / "summary.json").is_file():
        train.preflight(train_cfg)
        run_distributed(train_cfg, "train", round_dir(cfg, k), lambda: train.run(train_cfg))
    train_seconds = time.perf_counter() - trained
    weights = round_weights(train_cfg, eval_cfg)  # LoRA: merged into the start, which evaluation reads
    run_distributed(eval_cfg, "generate", round_dir(cfg, k), lambda: generate.run(eval_cfg, progress=progress))
    metrics = score.run(eval_cfg, progress=progress)
    record = round_record(cfg, k, start, pairs, metrics, train_seconds, time.perf_counter() - began)
    record["pairs"]["trained_on"] = len(read_pair_index(layout.pair_index(train_cfg)))  # after ties, data.max_pairs
    record["weights"] = str(weights)
    write_json_atomic(done, record)
    return record


def run(cfg: Config, progress: bool = True) -> dict:
    from ..online.figures import round_series, write_rounds_figure
    from ..online.rounds import judged_prompt_set, labellers, online_dir, run_rounds

    summary = run_rounds(cfg, run_round, progress=progress)
    series = round_series(summary, judged_prompt_set(cfg), labellers(cfg), cfg.online.guard_scorer, cfg.online.method)
    for i, record in enumerate(summary["rounds"]):
        line: dict[str, Any] = {"round": record["round"]}
        line |= {f"{s.role}_win_rate/{s.judge}": s.win[i] for s in series}
        line |= {"guard_win_low": series[-1].low[i], "diverging": record["diverging"], **record["seconds"]}
        print(json.dumps(line))
    figure = write_rounds_figure(summary, series, online_dir(cfg) / "rounds.png")
    print(f"stopped: {summary['stopped']}; wrote {online_dir(cfg) / 'summary.json'} and {figure}")
    return summary
