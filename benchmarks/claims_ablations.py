"""The ablations the claims table needs, per world: a second evaluation guidance, InPO's inversion
steps, CFG in the inversion, and an SFT-for-200-steps control.

    .venv/bin/python -m benchmarks.claims_ablations --world toy-mixed
    .venv/bin/python -m benchmarks.claims_ablations --world toy     # both at once: one core each

Fixed before any of these runs (the core benchmark's hyperparameters, ``benchmarks.toy_alignment``:
lr 3e-6, β 5000, batch 16 pairs, caption dropout 0.2; InPO corrected, 10 inversion steps, policy,
eta 0.1, inversion CFG 1). Every arm is evaluated once, at its final step, on the core benchmark's
items (12 held-out prompts × 16 seeds, DDIM 10 steps):

* **guidance arms** (training seeds 0, 1, 2), each final UNet sampled at guidance 7.5 *and* 3.0:
  sft, dpo, inpo-corrected, sft-dpo, sft-inpo (100 steps; the SFT→X arms start from the sft arm of
  the same seed) and sft-200 (SFT for 200 steps: as many steps as the SFT→X arms took in all);
* **inversion ablations** (training seeds 0, 1, to fit the budget), guidance 7.5, against
  inpo-corrected of the same seeds: inversion steps 3 and 30 (the paper's range; 10 is the default),
  and inversion CFG 7.5 (the sampling guidance; the default inverts without CFG).

Verdicts (:func:`benchmarks.claims.verdict` on paired head-to-heads): "10 inversion steps balance
cost and quality" **holds** when 10 steps beat 3 and 30 steps do not beat 10, **fails** when 3 beat
10 or 30 beat 10, else open; "CFG in inversion hurts" holds when inversion without CFG beats it.

Outputs: ``benchmarks/results/{toy,toy_mixed}_claims_ablations.{json,md}`` (after every seed: partial
results are kept), read by ``python -m benchmarks.claims`` into ``docs/claims.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .claims import PRIMARY, evidence, verdict
from .harness import (
    INV,
    RESULTS,
    Arms,
    EvalItems,
    ForwardCounter,
    RunRecord,
    compare,
    eval_items,
    evaluate,
    fmt_ci,
    make_config,
    train_and_evaluate,
    write_atomic,
)
from .toy_alignment import ARMS, STEMS, arm_overrides

GUIDANCES = (7.5, 3.0)  # the protocol's evaluation guidance first
GUIDANCE_ARMS = ["sft", "dpo", "inpo-corrected", "sft-dpo", "sft-inpo", "sft-200"]
ABLATION_ARMS = ["inpo-inv3", "inpo-inv30", "inpo-invcfg"]
STEP_MULTIPLE = {"sft-200": 2}  # × --steps (100); every other arm trains --steps
ABLATIONS: Arms = {
    **{name: ARMS[name] for name in GUIDANCE_ARMS if name in ARMS},
    "sft-200": ("sft", []),
    "inpo-inv3": ("inpo", [f"{INV}.mode=corrected", f"{INV}.steps=3"]),
    "inpo-inv30": ("inpo", [f"{INV}.mode=corrected", f"{INV}.steps=30"]),
    "inpo-invcfg": ("inpo", [f"{INV}.mode=corrected", f"{INV}.guidance=7.5"]),
}
# (A, B, guidances): "A beats B", paired over the seeds both arms ran
HEAD_TO_HEAD: tuple[tuple[str, str, tuple[float, ...]], ...] = (
    (*PRIMARY, GUIDANCES),
    ("inpo-corrected", "sft", GUIDANCES),
    ("sft-inpo", "sft-dpo", GUIDANCES),
    ("sft-inpo", "inpo-corrected", GUIDANCES),
    ("sft-inpo", "sft-200", GUIDANCES),
    ("sft-dpo", "sft-200", GUIDANCES),
    ("sft-200", "sft", GUIDANCES),
    ("inpo-inv3", "inpo-corrected", (7.5,)),
    ("inpo-inv30", "inpo-corrected", (7.5,)),
    ("inpo-corrected", "inpo-invcfg", (7.5,)),
)
CLAIM_ROWS = (  # claim → head-to-head (A, B) it reads, at every guidance measured
    ("InPO beats DPO at equal steps (primary endpoint)", PRIMARY),
    ("InPO beats SFT", ("inpo-corrected", "sft")),
    ("SFT→InPO beats SFT→DPO", ("sft-inpo", "sft-dpo")),
    ("SFT-initialised policy and reference help InPO", ("sft-inpo", "inpo-corrected")),
    ("SFT→InPO beats SFT for as many steps (200)", ("sft-inpo", "sft-200")),
    ("CFG in inversion hurts", ("inpo-corrected", "inpo-invcfg")),
)

Final = dict[str, Any]  # one arm, one seed, one guidance: evaluate() of its final UNet + its cost


def final_unet_eval(
    work: Path, record: RunRecord, items: EvalItems, args: argparse.Namespace, data: Any
) -> Final:
    """The run's saved final UNet (``runs/<name>-s<seed>/out/unet``) sampled at ``items.guidance``."""
    from inpo.models import load_components

    unet = work / "runs" / f"{record.name}-s{record.seed}" / "out" / "unet"
    cfg = make_config(work, [f"model.unet={unet}"], args.world, data)
    components = load_components(cfg.model)
    return evaluate(components, components.unet, items, cfg.data.resolution)


def cost(record: RunRecord) -> dict[str, float]:
    e = record.evals[max(record.evals)]
    return {
        "step": max(record.evals),
        "pairs": e["pairs"],
        "seconds": e["seconds"],
        "forward_rows": e["rows_grad"] + e["rows_no_grad"],
        "inversion_calls": e["inversion_calls"],
    }


def arm_compare(
    finals: dict[tuple[str, int], Final], a: str, b: str, items: EvalItems, samples: int
) -> dict[str, Any] | None:
    """Final-step scores of arm ``a`` vs arm ``b``, paired over the training seeds both ran."""
    seeds = sorted({s for n, s in finals if n == a} & {s for n, s in finals if n == b})
    if not seeds:
        return None
    x = np.concatenate([finals[a, s]["scores"] for s in seeds])
    y = np.concatenate([finals[b, s]["scores"] for s in seeds])
    sa, sb = finals[a, seeds[0]]["cost"]["step"], finals[b, seeds[0]]["cost"]["step"]
    step = str(sa) if sa == sb else f"{sa} vs {sb}"
    return {
        "a": a,
        "b": b,
        "step": step,
        "seeds": seeds,
        **compare(x, y, np.tile(items.ids, len(seeds)), samples),
    }


def arm_summary(finals: dict[tuple[str, int], Final], items: EvalItems, samples: int) -> dict[str, Any]:
    """Per arm: its final step vs the base's image of the same item, pooled over its seeds."""
    base = finals["base", -1]["scores"]
    out: dict[str, Any] = {}
    for name in dict.fromkeys(n for n, _ in finals if n != "base"):
        seeds = sorted(s for n, s in finals if n == name)
        mine = [finals[name, s] for s in seeds]
        x = np.concatenate([f["scores"] for f in mine])
        out[name] = {
            "seeds": seeds,
            **compare(x, np.tile(base, len(seeds)), np.tile(items.ids, len(seeds)), samples),
            **{k: float(np.mean([f[k] for f in mine])) for k in ("oracle_mean", "accuracy", "diversity")},
            **{k: float(np.mean([f["cost"][k] for f in mine])) for k in mine[0]["cost"]},
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="claims_ablations_"))
    overrides = [
        f"train.learning_rate={args.lr}",
        *(f"method.{m}.beta={args.beta}" for m in ("dpo", "inpo", "kto")),
    ]
    cfg = make_config(work, overrides, args.world)
    items = {
        g: _with_guidance(eval_items(cfg, None, args.eval_seeds, args.sample_steps), g) for g in GUIDANCES
    }
    finals: dict[float, dict[tuple[str, int], Final]] = {g: {} for g in GUIDANCES}
    from inpo.models import load_components

    base = load_components(cfg.model)
    for g in GUIDANCES:
        finals[g]["base", -1] = evaluate(base, base.unet, items[g], cfg.data.resolution)
    del base
    counter, runs = ForwardCounter(), list[RunRecord]()
    plan = [(s, n) for s in args.seeds for n in GUIDANCE_ARMS] + [
        (s, n) for s in args.ablation_seeds for n in ABLATION_ARMS
    ]
    for i, (seed, name) in enumerate(plan):
        t0 = time.perf_counter()
        extra = arm_overrides(work, name, seed, runs, ABLATIONS)
        record = train_and_evaluate(
            work,
            name,
            ABLATIONS[name][0],
            [*overrides, *extra],
            seed,
            [args.steps * STEP_MULTIPLE.get(name, 1)],
            items[7.5],
            counter,
            args.world,
        )
        runs.append(record)
        record_cost = cost(record)
        finals[7.5][name, seed] = {**record.evals[max(record.evals)], "cost": record_cost}
        if name in GUIDANCE_ARMS:
            for g in GUIDANCES[1:]:
                finals[g][name, seed] = {
                    **final_unet_eval(work, record, items[g], args, None),
                    "cost": record_cost,
                }
        for g in GUIDANCES:  # images are not kept: 192 per arm and guidance would fill memory
            finals[g].get((name, seed), {}).pop("images", None)
        if name != "sft":  # the SFT→X arms start from sft's saved UNet
            shutil.rmtree(work / "runs" / f"{name}-s{seed}", ignore_errors=True)
        print(
            f"[{i + 1}/{len(plan)} {name} seed {seed}] {time.perf_counter() - t0:.1f}s  "
            + "  ".join(
                f"g{g}: oracle {finals[g][name, seed]['oracle_mean']:.4f}"
                for g in GUIDANCES
                if (name, seed) in finals[g]
            )
            + f"  (base {finals[7.5]['base', -1]['oracle_mean']:.4f})",
            flush=True,
        )
        if args.write:  # after every run: a killed benchmark keeps what it measured
            write_outputs(args, build_payload(args, items, finals, started, complete=i + 1 == len(plan)))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return build_payload(args, items, finals, started, complete=True)


def _with_guidance(items: EvalItems, guidance: float) -> EvalItems:
    return EvalItems(items.prompts, items.seeds, items.sample_steps, guidance)


# ------------------------------------------------------------------------------------- the claims


def inversion_steps_claim(h: dict[tuple[str, str, float], dict[str, Any]]) -> dict[str, Any]:
    """'10 inversion steps balance cost and quality' from the 3- and 30-step arms vs 10 (guidance 7.5)."""
    three, thirty = h.get(("inpo-inv3", "inpo-corrected", 7.5)), h.get(("inpo-inv30", "inpo-corrected", 7.5))
    v3, v30 = verdict(three), verdict(thirty)
    if three is None or thirty is None:
        v = "open"
    elif v30 == "holds" or v3 == "holds":
        v = "fails"
    elif v3 == "fails":
        v = "holds"
    else:
        v = "open"
    return {
        "claim": "10 inversion steps balance cost and quality",
        "guidance": 7.5,
        "verdict": v,
        "evidence": f"{evidence(three)}; {evidence(thirty)}",
    }


def ablation_claims(h: dict[tuple[str, str, float], dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [inversion_steps_claim(h)]
    for claim, (a, b) in CLAIM_ROWS:
        for g in GUIDANCES:
            if (a, b, g) in h:
                rows.append(
                    {
                        "claim": claim,
                        "guidance": g,
                        "verdict": verdict(h[a, b, g]),
                        "evidence": evidence(h[a, b, g]),
                    }
                )
    return rows


def build_payload(
    args: argparse.Namespace,
    items: dict[float, EvalItems],
    finals: dict[float, dict[tuple[str, int], Final]],
    started: float,
    complete: bool,
) -> dict[str, Any]:
    h = {
        (a, b, g): e
        for a, b, gs in HEAD_TO_HEAD
        for g in gs
        if (e := arm_compare(finals[g], a, b, items[g], args.bootstrap)) is not None
    }
    first = items[GUIDANCES[0]]
    return {
        "world": args.world,
        "setup": {
            "n_items": len(first.prompts),
            "eval_seeds": args.eval_seeds,
            "sample_steps": first.sample_steps,
            "guidances": list(GUIDANCES),
            "train_seeds": list(args.seeds),
            "ablation_seeds": list(args.ablation_seeds),
            "learning_rate": args.lr,
            "beta": args.beta,
            "arms": {n: ABLATIONS[n][1] for n in [*GUIDANCE_ARMS, *ABLATION_ARMS]},
            "steps": {n: args.steps * STEP_MULTIPLE.get(n, 1) for n in [*GUIDANCE_ARMS, *ABLATION_ARMS]},
            "bootstrap": args.bootstrap,
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "machine": platform.platform(),
        },
        "base": {
            str(g): {k: finals[g]["base", -1][k] for k in ("oracle_mean", "accuracy", "diversity")}
            for g in GUIDANCES
        },
        "summary": {str(g): arm_summary(finals[g], items[g], args.bootstrap) for g in GUIDANCES},
        "head_to_head": [{**e, "guidance": g} for (_, _, g), e in h.items()],
        "claims": ablation_claims(h),
        "item_scores": {
            f"{n}/s{s}/g{g}": [round(float(v), 6) for v in f["scores"]]
            for g in GUIDANCES
            for (n, s), f in finals[g].items()
        },
        "wall_seconds": time.perf_counter() - started,
        "complete": complete,
    }


def markdown(payload: dict[str, Any]) -> str:
    s = payload["setup"]
    lines = [
        f"# Claims ablations, world `{payload['world']}`",
        "",
        f"{s['n_items']} items, DDIM {s['sample_steps']} steps, guidance {' and '.join(map(str, s['guidances']))}; "
        f"guidance arms on training seeds {s['train_seeds']}, inversion ablations on {s['ablation_seeds']}; "
        f"lr {s['learning_rate']}, β {s['beta']}. Wall {payload['wall_seconds']:.0f} s, torch threads "
        f"{s['threads']}{'' if payload['complete'] else ' (partial: the run is still going or was stopped)'}.",
        "",
        "## Each arm's final step vs the base",
        "",
        "| guidance | arm | steps | seeds | win-rate vs base | mean gain | oracle | accuracy | diversity | "
        "fwd rows | inversion calls | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g, arms in payload["summary"].items():
        b = payload["base"][g]
        lines.append(
            f"| {g} | base | – | – | – | – | {b['oracle_mean']:.4f} | {b['accuracy']:.3f} | {b['diversity']:.3f} | – | – | – |"
        )
        for name, a in arms.items():
            lines.append(
                f"| {g} | {name} | {a['step']:.0f} | {a['seeds']} | {fmt_ci(a['win_rate'], a['win_low'], a['win_high'])} | "
                f"{fmt_ci(a['mean_gain'], a['gain_low'], a['gain_high'], 4)} | {a['oracle_mean']:.4f} | "
                f"{a['accuracy']:.3f} | {a['diversity']:.3f} | {a['forward_rows']:.0f} | {a['inversion_calls']:.0f} | "
                f"{a['seconds']:.1f} |"
            )
    lines += [
        "",
        "## Head to head",
        "",
        "| guidance | A | B | steps | seeds | win-rate of A | mean gain of A |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for h in payload["head_to_head"]:
        lines.append(
            f"| {h['guidance']} | {h['a']} | {h['b']} | {h['step']} | {h['seeds']} | "
            f"{fmt_ci(h['win_rate'], h['win_low'], h['win_high'])} | {fmt_ci(h['mean_gain'], h['gain_low'], h['gain_high'], 4)} |"
        )
    lines += ["", "## Claims", "", "| claim | guidance | verdict | evidence |", "|---|---|---|---|"]
    lines += [
        f"| {c['claim']} | {c['guidance']} | {c['verdict']} | {c['evidence']} |" for c in payload["claims"]
    ]
    return "\n".join(lines) + "\n"


def write_outputs(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    out = Path(args.results) / f"{STEMS[args.world].replace('_alignment', '')}_claims_ablations"
    write_atomic(out.with_suffix(".json"), json.dumps(payload, indent=1))
    write_atomic(out.with_suffix(".md"), markdown(payload))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", default="toy-mixed", choices=list(STEMS))
    p.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds of the guidance arms"
    )
    p.add_argument(
        "--ablation-seeds",
        nargs="+",
        type=int,
        default=[0, 1],
        help="training seeds of the inversion ablations",
    )
    p.add_argument("--steps", type=int, default=100, help="training steps (sft-200: twice as many)")
    p.add_argument("--eval-seeds", type=int, default=16)
    p.add_argument("--sample-steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=3e-6)
    p.add_argument("--beta", type=float, default=5000.0)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default=None, help="scratch folder (default: a temp dir, removed)")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--no-write", dest="write", action="store_false")
    return p.parse_args(argv)


if __name__ == "__main__":
    run(parse_args())
