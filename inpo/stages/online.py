"""``inpo online``: online rounds in a toy world (docs/online_rounds.md) — sample pairs from the
current policy, label them with the world's labeller, train ``online.method`` for a round, evaluate
against the base with the labeller and the held-out guard; resumable round by round. See
:mod:`inpo.online.rounds`."""

from __future__ import annotations

import argparse
import json

from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def preflight(cfg: Config) -> None:
    from ..online.rounds import preflight as rounds_preflight

    rounds_preflight(cfg)


def run(cfg: Config, progress: bool = True) -> dict:
    from ..online.rounds import online_dir, run_rounds

    summary = run_rounds(cfg, progress=progress)
    method, guard = cfg.online.method, cfg.online.guard_scorer
    prompt_set = cfg.eval.prompt_sets[0]
    for record in summary["rounds"]:
        m = record["metrics"][method]
        print(
            json.dumps(
                {
                    "round": record["round"],
                    "labeller_win_rate": m[f"{prompt_set}/oracle/win_rate"],
                    "guard_win_rate": m[f"{prompt_set}/{guard}/win_rate"],
                    "guard_win_low": m[f"{prompt_set}/{guard}/win_low"],
                    **record["seconds"],
                }
            )
        )
    print(f"stopped: {summary['stopped']}; wrote {online_dir(cfg) / 'summary.json'}")
    return summary
