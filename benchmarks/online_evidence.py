"""Offline InPO vs offline SmPO vs online InPO rounds, at equal training pairs and steps (issue 14,
part 3; the protocol is docs/online_rounds.md, stated before any run).

    .venv/bin/python -m benchmarks.online_evidence --world toy-mixed   # → results/online_evidence_toy_mixed.{json,md}
    .venv/bin/python -m benchmarks.online_evidence --world toy
    .venv/bin/python -m benchmarks.online_evidence --world toy --quick # 1 seed, tiny: a smoke run, nothing saved
                                                          # (world toy only: toy-mixed refuses InPO on pairs it did not validate)

Arms, each from the world's base, evaluated on the world's held-out prompts × 16 seeds (DDIM — flow
Euler for a flow base — 10 steps at guidance 7.5) against the base, pooled over training seeds 0, 1, 2:
- ``offline-inpo``: InPO (corrected) on the world's offline pairs for 99 steps;
- ``offline-smpo``: SmPO (corrected, the same inversion) on the same pairs with the smoothed label from
  the information the hard label came from (:func:`inpo.toyworld.online_pairs.world_soft_labels`);
- ``online-inpo``: 3 rounds of :mod:`inpo.online` × 33 steps, each round's training pairs capped at a
  third of the offline pair count (equal total training pairs), labelled by the world's labeller.
Reported beside the win-rates: sampling, labelling and training seconds, and each round's labeller and
guard (``oracle_strict``) win-rates from the rounds' own evaluation (4 seeds a prompt).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import harness
from .alignment_report import summarize
from .online_evidence_figure import write_figure

PROTOCOL: dict[str, Any] = {
    "overrides": [
        "train.learning_rate=3e-6",
        "method.inpo.beta=5000",
        "method.smpo.beta=5000",
        "method.inpo.inversion.mode=corrected",
        "method.smpo.inversion.mode=corrected",
        "train.pairs_per_device=16",
        "train.grad_accum=1",
        "data.caption_dropout=0.2",
    ],
    "train_seeds": [0, 1, 2],
    "steps": 99,
    "rounds": 3,
    "eval_seeds": 16,
    "round_eval_seeds": 4,
    "sample_steps": 10,
    "guidance": 7.5,
    "bootstrap": 2000,
}
QUICK: dict[str, Any] = {**PROTOCOL, "train_seeds": [0], "steps": 6, "eval_seeds": 2, "round_eval_seeds": 1}
QUICK_PAIRS_PER_PROMPT = 3


def soft_pairs(cfg: Any, out: Path) -> Path:
    """The world's offline pair shard with ``soft_label_0`` added (its metadata copied), in ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from inpo import layout
    from inpo.io import atomic_directory
    from inpo.toyworld.online_pairs import world_soft_labels
    from inpo.toyworld.pairs import SHARD_NAME

    if (out / SHARD_NAME).is_file():
        return out
    source = layout.world_pairs_dir(cfg)
    table = pq.read_table(source / SHARD_NAME)
    scores = torch.tensor(np.stack([table["oracle_0"].to_numpy(), table["oracle_1"].to_numpy()], axis=1))
    label_0 = torch.tensor(table["label_0"].to_numpy())
    soft = world_soft_labels(cfg, scores, label_0).numpy()
    with atomic_directory(out) as tmp:
        pq.write_table(table.append_column("soft_label_0", pa.array(soft, pa.float64())), tmp / SHARD_NAME)
        (tmp / "metadata.json").write_text((source / "metadata.json").read_text())
    return out


def online_arm(
    work: Path,
    overrides: list[str],
    seed: int,
    settings: dict[str, Any],
    items: harness.EvalItems,
    world: str,
    data: str | None,
    offline_pairs: int,
) -> tuple[harness.RunRecord, list[dict[str, Any]]]:
    """Online InPO rounds for ``seed``, its final policy evaluated like the offline arms."""
    import dataclasses

    from inpo.models import load_components
    from inpo.online.rounds import run_rounds
    from inpo.stages.online import run_round

    rounds, steps = settings["rounds"], settings["steps"]
    per_prompt = math.ceil(harness.make_config(work, overrides, world, data).toy.pairs.pairs_per_prompt / rounds)
    cfg = harness.make_config(
        work,
        [
            *overrides,
            f"train.seed={seed}",
            f"online.rounds={rounds}",
            f"online.steps_per_round={steps // rounds}",
            f"online.pairs_per_prompt={per_prompt}",
            f"online.patience={rounds}",  # every round runs: the comparison is at equal steps
            f"data.max_pairs={offline_pairs // rounds}",
            f"eval.seeds_per_prompt.toy={settings['round_eval_seeds']}",
            f"sample.steps={settings['sample_steps']}",
            "tracking.enabled=false",
        ],
        world,
        data,
    )
    started = time.perf_counter()
    summary = run_rounds(cfg, run_round, progress=False)
    record = harness.RunRecord("online-inpo", seed, wall_seconds=time.perf_counter() - started)
    final = load_components(dataclasses.replace(cfg.model, unet=summary["final_weights"]))
    result = harness.evaluate(final, final.unet, items, cfg.data.resolution)
    result["seconds"] = sum(r["seconds"]["training"] for r in summary["rounds"])
    result["pairs"] = steps * cfg.train.pairs_per_device * cfg.train.grad_accum
    result["rows_grad"] = result["rows_no_grad"] = math.nan  # the rounds' stages run without the counter
    record.evals[steps] = result
    record.losses = [
        json.loads(line)["loss"]
        for r in summary["rounds"]
        for line in (Path(r["weights"]).parent / "metrics.jsonl").read_text().splitlines()
        if line
    ]
    return record, summary["rounds"]


def run(world: str, settings: dict[str, Any], work: Path, threads: int, quick: bool) -> dict[str, Any]:
    from inpo.data import read_pair_index
    from inpo.models import load_components

    torch.set_num_threads(threads)
    started = time.perf_counter()
    overrides = [*settings["overrides"], f"sample.guidance={settings['guidance']}"]
    data = None
    if quick:
        overrides.append(f"toy.pairs.pairs_per_prompt={QUICK_PAIRS_PER_PROMPT}")
        data = f"{world}-{QUICK_PAIRS_PER_PROMPT}-per-prompt"
    inv = [f"method.smpo.inversion.{k}={v}" for k, v in _inversion(harness.make_config(work, overrides, world, data))]
    overrides += inv  # SmPO inverts exactly as InPO does
    cfg = harness.make_config(work / "offline-inpo", overrides, world, data)
    harness.require_validated_world(cfg)
    offline_pairs = len(read_pair_index(harness.ensure_pairs(cfg)))
    items = harness.eval_items(cfg, None, settings["eval_seeds"], settings["sample_steps"])
    base_model = load_components(cfg.model)
    base = harness.evaluate(base_model, base_model.unet, items, cfg.data.resolution)
    del base_model
    soft = soft_pairs(cfg, work / "smpo-pairs")
    counter = harness.ForwardCounter()
    runs: list[harness.RunRecord] = []
    rounds: dict[str, list[dict[str, Any]]] = {}
    steps = settings["steps"]
    for seed in settings["train_seeds"]:
        runs.append(
            harness.train_and_evaluate(
                work / "offline-inpo", "offline-inpo", "inpo", overrides, seed, [steps], items, counter, world, data
            )
        )
        smpo = [*overrides, f"data.source={soft}"]
        runs.append(
            harness.train_and_evaluate(
                work / "offline-smpo", "offline-smpo", "smpo", smpo, seed, [steps], items, counter, world, data
            )
        )
        record, rounds[str(seed)] = online_arm(
            work / f"online-s{seed}", overrides, seed, settings, items, world, data, offline_pairs
        )
        runs.append(record)
        print(f"[{world} seed {seed}] {time.perf_counter() - started:.0f}s", flush=True)
    summary = summarize(base, runs, items, settings["bootstrap"])
    return {
        "world": world,
        "protocol": settings,
        "offline_pairs": offline_pairs,
        "base": {k: base[k] for k in ("oracle_mean", "accuracy", "diversity")},
        "results": {name: s["steps"][str(steps)]["pooled"] for name, s in summary.items()},
        "per_seed": {name: s["steps"][str(steps)]["seeds"] for name, s in summary.items()},
        "head_to_head": head_to_head(runs, items, steps, settings["bootstrap"]),
        "rounds": {seed: [_round_row(r) for r in records] for seed, records in rounds.items()},
        "wall_seconds": round(time.perf_counter() - started, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _inversion(cfg: Any) -> list[tuple[str, Any]]:
    inv = cfg.method.inpo.inversion
    return [("steps", inv.steps), ("eta", inv.eta), ("model", inv.model), ("guidance", inv.guidance)]


def head_to_head(runs: list[harness.RunRecord], items: harness.EvalItems, step: int, samples: int) -> dict[str, Any]:
    """Online and SmPO against offline InPO, paired item by item within each seed, pooled."""
    out = {}
    for arm in ("online-inpo", "offline-smpo"):
        pairs = [
            (a.evals[step]["scores"], b.evals[step]["scores"])
            for a in runs
            if a.name == arm
            for b in runs
            if b.name == "offline-inpo" and b.seed == a.seed
        ]
        a = np.concatenate([p[0] for p in pairs])
        b = np.concatenate([p[1] for p in pairs])
        out[f"{arm} vs offline-inpo"] = harness.compare(a, b, np.tile(items.ids, len(pairs)), samples)
    return out


def _round_row(record: dict[str, Any]) -> dict[str, Any]:
    judged = record["metrics"][record["method"]]
    return {
        "round": record["round"],
        "labeller_win_rate": judged.get("toy/oracle/win_rate"),
        "guard_win_rate": judged.get("toy/oracle_strict/win_rate"),
        "guard_win_low": judged.get("toy/oracle_strict/win_low"),
        "pairs": record["pairs"]["pairs"],
        "trained_on": record["pairs"]["trained_on"],
        **{f"{k}_seconds": v for k, v in record["seconds"].items()},
    }


def markdown(payload: dict[str, Any]) -> str:
    p = payload["protocol"]
    lines = [
        f"# Offline InPO vs SmPO vs online rounds, world `{payload['world']}`",
        "",
        f"Evaluation: {p['sample_steps']} sampler steps, guidance {p['guidance']}; held-out prompts × "
        f"{p['eval_seeds']} seeds; training seeds {p['train_seeds']}; {p['steps']} steps each "
        f"({p['rounds']} rounds × {p['steps'] // p['rounds']} online); offline pairs {payload['offline_pairs']} "
        "(online: a third per round). Win-rates against the base, 95% paired bootstrap over prompts, pooled.",
        "",
        "| arm | win-rate vs base | mean gain | training s (mean per seed) |",
        "|---|---|---|---|",
    ]
    for name, r in payload["results"].items():
        lines.append(
            f"| {name} | {harness.fmt_ci(r['win_rate'], r['win_low'], r['win_high'])} | "
            f"{harness.fmt_ci(r['mean_gain'], r['gain_low'], r['gain_high'], 4)} | {r['seconds']:.0f} |"
        )
    lines += ["", "| head to head | win-rate | mean gain |", "|---|---|---|"]
    for name, r in payload["head_to_head"].items():
        lines.append(
            f"| {name} | {harness.fmt_ci(r['win_rate'], r['win_low'], r['win_high'])} | "
            f"{harness.fmt_ci(r['mean_gain'], r['gain_low'], r['gain_high'], 4)} |"
        )
    lines += ["", "Online rounds (their own evaluation): labeller vs held-out guard win-rate, seconds", ""]
    lines += ["| seed | round | labeller | guard [low] | pairs sampled / trained on | sampling s | labelling s | training s |"]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for seed, rows in payload["rounds"].items():
        for r in rows:
            lines.append(
                f"| {seed} | {r['round']} | {r['labeller_win_rate']:.3f} | {r['guard_win_rate']:.3f} "
                f"[{r['guard_win_low']:.3f}] | {r['pairs']} / {r['trained_on']} | {r['sampling_seconds']:.0f} | "
                f"{r['labelling_seconds']:.1f} | {r['training_seconds']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="toy-mixed", choices=["toy", "toy-mixed"])
    parser.add_argument("--quick", action="store_true", help="1 seed, tiny settings: nothing is saved")
    parser.add_argument("--work", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="online_evidence_"))
    payload = run(args.world, QUICK if args.quick else PROTOCOL, work, args.threads, args.quick)
    table = markdown(payload)
    print(table)
    if not args.quick:
        stem = harness.RESULTS / f"online_evidence_{args.world.replace('-', '_')}"
        harness.write_atomic(stem.with_suffix(".json"), json.dumps(payload, indent=1, default=float) + "\n")
        harness.write_atomic(stem.with_suffix(".md"), table)
        write_figure(payload, stem.with_suffix(".png"))
    return payload


if __name__ == "__main__":
    main()
