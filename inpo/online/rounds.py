"""Online rounds' plan and records (``inpo online``; protocol in docs/online_rounds.md): the round
configs, what a finished round records, and the stopping rule. The stage :mod:`inpo.stages.online`
runs one round with the pipeline's stages (:func:`inpo.stages.online.run_round`).

Round k lives in ``<paths.outputs>/online/round-<k>/``: ``pairs/`` (the policy's samples, labelled),
``prepare/``, ``train/<method>/``, ``generate/``, ``score/`` — the pipeline's own stages, run with a
round config — and ``round.json``, written last and atomically: a round with it is finished and never
redone; a killed round resumes where its stages stopped (pairs and the pair index are written whole,
training resumes from its checkpoints, generation skips the images it has). Round k trains from round
k−1's weights (round 1 from the world's base, or the SFT model), which are also its reference; each
round is evaluated against the world's base, by the labeller and by the held-out guard scorer. A LoRA
round trains an adapter on its start and hands the next round that adapter merged (a full UNet in
``round-<k>/eval/train/<method>/unet``, which its evaluation reads).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..io import write_json_atomic

if TYPE_CHECKING:
    from ..config import Config

ROUND_FILE = "round.json"


def online_dir(cfg: Config) -> Path:
    return Path(cfg.paths.outputs) / "online"


def round_dir(cfg: Config, k: int) -> Path:
    return online_dir(cfg) / f"round-{k}"


def steps_per_round(cfg: Config) -> int:
    return cfg.online.steps_per_round or max(1, cfg.train.max_steps // cfg.online.rounds)


def pairs_per_prompt(cfg: Config) -> int:
    """``online.pairs_per_prompt``, else the world's offline pairs per prompt shared out over the rounds."""
    from ..worlds import get_world

    offline = get_world(cfg).offline_pairs_per_prompt(cfg)
    return cfg.online.pairs_per_prompt or max(1, offline // cfg.online.rounds)


def labellers(cfg: Config) -> list[str]:
    """The scorers that label the rounds' pairs: the world's own labeller, else the ``relabel`` judges."""
    from evaluation.relabel import judge_weights

    from ..worlds import get_world

    return get_world(cfg).round_labellers(cfg) or list(judge_weights(cfg))


def make_round_pairs(cfg: Config, policy: Any, k: int, out: Path, progress: bool = True) -> dict[str, Any]:
    """Round ``k``'s pairs from ``policy`` into ``out``: by the world's own labeller, or scored by the
    ``relabel`` judges (:mod:`.scored_pairs`); their metadata."""
    from ..worlds import get_world
    from .scored_pairs import write_scored_round_pairs

    world = get_world(cfg)
    if world.round_labellers(cfg):
        return world.make_round_pairs(cfg, policy, k, pairs_per_prompt(cfg), out, progress)
    return write_scored_round_pairs(cfg, policy, k, pairs_per_prompt(cfg), out, progress)


def preflight(cfg: Config) -> None:
    """Refuse, before any work, settings the rounds cannot run with (naming the key)."""
    from evaluation.scorers import SCORERS

    from ..methods import METHODS
    from ..worlds import get_world
    from .scored_pairs import check_scored_rounds

    o = cfg.online
    world = get_world(cfg)
    if o.method not in METHODS:
        raise InputError(f"online.method: unknown method {o.method!r}; expected one of {', '.join(METHODS)}")
    if not world.round_labellers(cfg):
        check_scored_rounds(cfg)
    elif o.prompts is not None:
        raise InputError(
            f"online.prompts: world {cfg.world!r} samples its own training prompts (its labeller judges only "
            "those); leave online.prompts null"
        )
    judges = labellers(cfg)
    for key, name in [*(("relabel.scorers", j) for j in judges), ("online.guard_scorer", o.guard_scorer)]:
        if name not in SCORERS:
            raise InputError(f"{key}: unknown scorer {name!r}; expected one of {', '.join(SCORERS)}")
    if o.guard_scorer in judges:
        raise InputError(
            f"online.guard_scorer: {o.guard_scorer!r} labels the rounds ({', '.join(judges)}); the guard must be "
            "a scorer the labeller is not (toy worlds: oracle_strict)"
        )


def round_configs(cfg: Config, k: int, start: str | None) -> tuple[Config, Config]:
    """(training config, evaluation config) of round ``k`` starting from the UNet folder ``start``
    (None: the model training starts from, :func:`inpo.models.starting.starting_model`). Evaluation
    compares the round's weights with the configured model. LoRA rounds train an adapter on ``start``
    and are evaluated (and continued) as that adapter merged into it: a full UNet in the evaluation
    config's outputs (:func:`round_weights`)."""
    from ..config import config_from_dict, to_dict
    from ..models.starting import starting_model

    raw = to_dict(cfg)
    rdir = round_dir(cfg, k)
    raw["paths"]["outputs"] = str(rdir)
    raw["paths"]["checkpoints"] = str(Path(cfg.paths.checkpoints) / "online" / f"round-{k}")
    raw["data"]["source"] = str(rdir / "pairs")
    raw["methods"] = [cfg.online.method]
    raw["train"]["max_steps"] = steps_per_round(cfg)
    raw["eval"]["scorers"] = [*labellers(cfg), cfg.online.guard_scorer]
    first = starting_model(cfg)
    raw["sft"]["enabled"] = False
    if cfg.model.lora.enabled:
        raw["paths"]["outputs"] = str(rdir / "eval")
    evaluation = config_from_dict(raw)
    raw["paths"]["outputs"] = str(rdir)
    raw["model"]["unet"], raw["model"]["unet_lora"] = (first.unet, first.unet_lora) if start is None else (start, None)
    return config_from_dict(raw), evaluation


def round_weights(train_cfg: Config, eval_cfg: Config) -> Path:
    """The full UNet a round ends with (the next round's start): the trained UNet, or for a LoRA round
    the adapter merged into the round's start, written where the evaluation config's method reads it."""
    from .. import layout

    method = train_cfg.methods[0]
    if not train_cfg.model.lora.enabled:
        return layout.train_weights(train_cfg, method)
    merged = layout.train_weights(eval_cfg, method)
    if not (merged / "config.json").is_file():
        from ..models import load_denoiser
        from ..models.saving import load_lora_and_merge, save_unet_weights

        unet = load_denoiser(train_cfg.model)
        load_lora_and_merge(unet, str(layout.train_weights(train_cfg, method)))
        save_unet_weights(unet, merged, lora=False)
    return merged


def round_record(
    cfg: Config, k: int, start: str | None, pairs: Path, metrics: dict[str, float], train_s: float, wall_s: float
) -> dict[str, Any]:
    """What a finished round keeps: its pairs' statistics, the method's win-rates against the base by
    the labeller and the guard (per prompt set), the world's guard metrics, and where time went."""
    meta = json.loads((pairs / "metadata.json").read_text())
    method = cfg.online.method
    judged = {
        model: {key.removeprefix(f"{model}/"): value for key, value in metrics.items() if key.startswith(f"{model}/")}
        for model in ("base", method)
    }
    return {
        "round": k,
        "start": start,
        "method": method,
        "steps": steps_per_round(cfg),
        "pairs": {k_: meta[k_] for k_ in ("pairs", "ties", "labeller_mean")},
        "seconds": {
            "sampling": meta["sample_seconds"],
            "labelling": meta["label_seconds"],
            "training": round(train_s, 2),
            "total": round(wall_s, 2),
        },
        "labeller": labellers(cfg),
        "guard": cfg.online.guard_scorer,
        "metrics": judged,
    }


def judged_prompt_set(cfg: Config) -> str:
    """The name (in metric keys) of the first evaluation prompt set, the one the stopping rule reads."""
    from evaluation.prompts import prompt_set_name

    return prompt_set_name(cfg.eval.prompt_sets[0])


def guard_low(cfg: Config, record: dict[str, Any]) -> float:
    """The guard scorer's win-rate lower bound on the first evaluation prompt set."""
    key = f"{judged_prompt_set(cfg)}/{cfg.online.guard_scorer}/win_low"
    return float(record["metrics"][cfg.online.method][key])


def diverging(cfg: Config, record: dict[str, Any], previous: dict[str, Any] | None) -> bool:
    """Reward-hacking flag: the (first) labeller's win-rate rose since the previous round while the
    guard's win-rate lower bound fell (round 1: never)."""
    if previous is None:
        return False
    labeller = f"{judged_prompt_set(cfg)}/{labellers(cfg)[0]}/win_rate"
    now, before = record["metrics"][cfg.online.method], previous["metrics"][cfg.online.method]
    return bool(now[labeller] > before[labeller] and guard_low(cfg, record) < guard_low(cfg, previous))


RoundRunner = Callable[["Config", int, "str | None", bool], dict[str, Any]]
"""(config, round k, the UNet folder it starts from, progress) → the finished round's record."""


def run_rounds(cfg: Config, run_round: RoundRunner, progress: bool = True) -> dict[str, Any]:
    """Every round until ``online.rounds`` or the stopping rule; writes ``online/summary.json``."""
    preflight(cfg)
    records: list[dict[str, Any]] = []
    start: str | None = None  # round 1: the model training starts from (round_configs)
    best, stale, stopped = float("-inf"), 0, "rounds"
    for k in range(1, cfg.online.rounds + 1):
        record = run_round(cfg, k, start, progress)
        record = {**record, "diverging": diverging(cfg, record, records[-1] if records else None)}
        records.append(record)
        start = record["weights"]
        low = guard_low(cfg, record)
        best, stale = (low, 0) if low > best else (best, stale + 1)
        if stale >= cfg.online.patience:
            stopped = f"the guard's win-rate lower bound did not rise for {stale} rounds"
            break
    summary = {"rounds": records, "stopped": stopped, "final_weights": start}
    write_json_atomic(online_dir(cfg) / "summary.json", summary)
    return summary
