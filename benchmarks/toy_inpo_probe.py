"""Quick probes of why InPO makes the toy base worse (one training seed, ≤ 60 steps), beside Diffusion-DPO.

    .venv/bin/python -m benchmarks.toy_inpo_probe                 # every probe, 40 steps at lr 1e-5
    .venv/bin/python -m benchmarks.toy_inpo_probe --runs dpo inpo  # a subset

Evaluation as ``benchmarks.toy_alignment --quick``: 12 held-out prompts × 8 seeds = 96 items, DDIM 10 steps,
guidance 7.5; win-rate and mean oracle gain vs the base with 95% bootstrap intervals over items.
Training: the project's loop from the shipped base, batch 16, lr 1e-5, β 5000; InPO corrected,
10 inversion steps, policy inversion, eta 0.1 unless a probe sets otherwise.

Probes (hypotheses):
  a. the pairs were sampled with CFG 7.5 but the inversion runs at CFG 1: invert with the reference
     at ``inversion.guidance`` 7.5 (and at 1 for the same inverter, to separate the two changes);
  b. jitter: eta 0 vs the default 0.1;
  c. where the gradient hurts: trained timesteps restricted to 0–500 or 500–999, for InPO and for DPO.

With ``--grad-cosine`` instead: no training; at the base (policy = reference) the gradient of each
objective summed over 8 micro-batches of 16 training pairs, then the cosine between objectives and
between two disjoint halves of the pairs (how consistent one objective's direction is). Written to
``benchmarks/results/toy_inpo_probe_grad.json``.

Results: ``benchmarks/results/toy_inpo_probe.{json,md}``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from . import alignment_report as report
from . import harness

INV = harness.INV
LOW_T = ["train.timestep_min=0", "train.timestep_max=500"]
HIGH_T = ["train.timestep_min=500", "train.timestep_max=999"]

# name → (method, overrides, hypothesis); on top of lr 1e-5, β 5000, corrected / 10 steps / policy / eta 0.1
RUNS: dict[str, tuple[str, list[str], str]] = {
    "dpo": ("dpo", [], "anchor"),
    "inpo": ("inpo", [], "anchor"),
    "inpo-ref-cfg1": ("inpo", [f"{INV}.model=reference"], "a (control)"),
    "inpo-ref-cfg7.5": ("inpo", [f"{INV}.model=reference", f"{INV}.guidance=7.5"], "a"),
    "inpo-policy-cfg7.5": ("inpo", [f"{INV}.guidance=7.5"], "a"),
    "inpo-ref-cfg3": ("inpo", [f"{INV}.model=reference", f"{INV}.guidance=3"], "a"),
    "inpo-eta0": ("inpo", [f"{INV}.eta=0"], "b"),
    "inpo-t0-500": ("inpo", LOW_T, "c"),
    "inpo-t500-999": ("inpo", HIGH_T, "c"),
    "dpo-t0-500": ("dpo", LOW_T, "c (control)"),
    "dpo-t500-999": ("dpo", HIGH_T, "c (control)"),
}


def run_probes(args: argparse.Namespace) -> dict[str, Any]:
    from inpo.models import load_components

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="toy_inpo_probe_"))
    common = [
        f"train.learning_rate={args.lr}",
        f"method.dpo.beta={args.beta}",
        f"method.inpo.beta={args.beta}",
    ]
    cfg = harness.make_config(work, common)
    items = harness.eval_items(cfg, args.prompts, args.eval_seeds, args.sample_steps)
    components = load_components(cfg.model)
    base = harness.evaluate(components, components.unet, items, cfg.data.resolution)
    del components
    counter = harness.ForwardCounter()
    runs: list[harness.RunRecord] = []
    for name in args.runs:
        method, overrides, _ = RUNS[name]
        t0 = time.perf_counter()
        runs.append(
            harness.train_and_evaluate(
                work, name, method, [*common, *overrides], args.seed, args.eval_steps, items, counter
            )
        )
        last = runs[-1].evals[max(runs[-1].evals)]
        print(f"[{name}] {time.perf_counter() - t0:.0f}s oracle {last['oracle_mean']:.4f}", flush=True)
        payload = write(args, items, base, runs, started)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return payload


GRAD_OBJECTIVES: dict[str, tuple[str, list[str]]] = {
    "dpo": ("dpo", []),
    "sft": ("sft", []),
    "sft-losers": ("sft", []),  # SFT on the losers: the same objective on the swapped pair
    "inpo": ("inpo", []),
    "inpo-eta0": ("inpo", [f"{INV}.eta=0"]),
    "inpo-ref-cfg7.5": ("inpo", [f"{INV}.model=reference", f"{INV}.guidance=7.5"]),
    "inpo-ref-cfg1": ("inpo", [f"{INV}.model=reference"]),
}


SWAPPED = {"sft-losers"}  # objectives computed on pairs with winner and loser exchanged


def grad_cosine(args: argparse.Namespace, n_batches: int = 8) -> dict[str, Any]:
    """Cosines between the objectives' gradients at the base (see the module docstring)."""
    from inpo.data import PairDataset
    from inpo.methods import MethodContext, build_method, draw_pairs
    from inpo.methods.base import TimestepSampling
    from inpo.models import build_reference, load_components, unet_eps
    from inpo.train.encode import BatchEncoder

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="toy_inpo_grad_"))
    grads: dict[str, list[torch.Tensor]] = {}
    for name, (method, overrides) in GRAD_OBJECTIVES.items():
        cfg = harness.make_config(
            work, [f"method.inpo.beta={args.beta}", f"method.dpo.beta={args.beta}", *overrides], args.world
        )
        components = load_components(cfg.model)
        policy = components.unet
        policy.requires_grad_(True)
        reference = build_reference(policy, cfg.model)
        policy.train()
        reference.unet.train(True)
        abar = components.alphas_cumprod.float()
        objective = build_method(method, cfg.method)
        objective.prepare(
            MethodContext(
                policy=functools.partial(unet_eps, policy),
                raw_policy=functools.partial(unet_eps, policy),
                reference=reference,
                abar=abar,
                components=components,
                resolution=cfg.data.resolution,
            )
        )
        index = harness.ensure_pairs(cfg)
        dataset = PairDataset(index, cfg.data, seed=0)
        caches = BatchEncoder(components, cfg.data.resolution)
        params = [p for p in policy.parameters() if p.requires_grad]
        per_batch = []
        for b in range(n_batches):
            indices = list(range(16 * b, 16 * (b + 1)))
            enc = caches.encode(dataset, indices, "cpu")
            if name in SWAPPED:
                enc = swapped(enc)
            draws = draw_pairs(0, 0, indices, tuple(enc.x0_w.shape[1:]), TimestepSampling(0, 999))
            out = objective.objective(enc, draws)
            g = torch.autograd.grad(out.loss, params)
            per_batch.append(torch.cat([x.flatten() for x in g]).detach())
        grads[name] = per_batch
        print(f"[grad {name}] done", flush=True)
    shutil.rmtree(work, ignore_errors=True)

    def cos(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.nn.functional.cosine_similarity(a, b, dim=0))

    half = n_batches // 2
    total = {k: torch.stack(v).sum(0) for k, v in grads.items()}
    first = {k: torch.stack(v[:half]).sum(0) for k, v in grads.items()}
    second = {k: torch.stack(v[half:]).sum(0) for k, v in grads.items()}
    names = list(grads)
    payload = {
        "setup": {
            "world": args.world,
            "pairs": 16 * n_batches,
            "beta": args.beta,
            "objectives": GRAD_OBJECTIVES,
        },
        "cosine_total": {a: {b: cos(total[a], total[b]) for b in names} for a in names},
        "cosine_halves": {a: cos(first[a], second[a]) for a in names},
        "norm_total": {a: float(total[a].norm()) for a in names},
    }
    stem = "toy_inpo_probe_grad" + ("" if args.world == "toy" else f"_{args.world.replace('-', '_')}")
    harness.write_atomic(Path(args.results) / f"{stem}.json", json.dumps(payload, indent=1))
    return payload


def swapped(enc: Any) -> Any:
    """The encoded pairs with winner and loser exchanged (images, their conditioning rows, keys)."""
    import dataclasses

    b = enc.x0_w.shape[0]
    order = [*range(b, 2 * b), *range(b)]
    return dataclasses.replace(
        enc,
        x0_w=enc.x0_l,
        x0_l=enc.x0_w,
        cond2=enc.cond2.select(order),
        keys=[enc.keys[i] for i in order],
        geometry=enc.geometry[order],
    )


def write(
    args: argparse.Namespace,
    items: harness.EvalItems,
    base: dict[str, Any],
    runs: list[harness.RunRecord],
    started: float,
) -> dict[str, Any]:
    """Summarise the runs so far and write the JSON and markdown (after every run: partial results)."""
    summary = report.summarize(base, runs, items, args.bootstrap)
    train_stats = {}
    for r in runs:
        tail = r.metrics[-10:]
        train_stats[r.name] = {
            k: sum(m[k] for m in tail) / len(tail)
            for k in ("loss", "implicit_acc", "reward_margin")
            if all(k in m for m in tail)
        }
    payload = {
        "setup": {
            "seed": args.seed,
            "eval_steps": args.eval_steps,
            "n_items": len(items.prompts),
            "sample_steps": items.sample_steps,
            "guidance": items.guidance,
            "learning_rate": args.lr,
            "beta": args.beta,
            "defaults": "batch 16; InPO corrected, 10 inversion steps, policy inversion, eta 0.1, CFG 1",
            "threads": args.threads,
            "runs": {name: RUNS[name] for name in args.runs},
        },
        "base": {k: base[k] for k in ("oracle_mean", "accuracy", "diversity")},
        "summary": summary,
        "train_last10": train_stats,
        "wall_seconds": time.perf_counter() - started,
    }
    out = Path(args.results)
    harness.write_atomic(out / f"{args.stem}.json", json.dumps(payload, indent=1))
    harness.write_atomic(out / f"{args.stem}.md", markdown(payload))
    return payload


def markdown(payload: dict[str, Any]) -> str:
    s = payload["setup"]
    b = payload["base"]
    lines = [
        "# Toy-world InPO probes",
        "",
        f"Training seed {s['seed']}, lr {s['learning_rate']}, β {s['beta']}, {s['defaults']}; "
        f"{s['n_items']} held-out items, DDIM {s['sample_steps']} steps, guidance {s['guidance']}. "
        f"Wall {payload['wall_seconds']:.0f} s (shared 2-CPU machine, {s['threads']} torch thread).",
        "",
        f"Base: oracle {b['oracle_mean']:.3f}, accuracy {b['accuracy']:.3f}, diversity {b['diversity']:.3f}.",
        "",
        "| run | hyp. | overrides | step | train s | win-rate vs base | mean gain | beats | accuracy | "
        "train loss / impl. acc (last 10) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in payload["summary"].items():
        _, overrides, hyp = s["runs"][name]
        t = payload["train_last10"].get(name, {})
        tr = f"{t['loss']:.3f} / {t['implicit_acc']:.2f}" if "implicit_acc" in t else "–"
        for step, v in m["steps"].items():
            p = v["pooled"]
            lines.append(
                f"| {name} | {hyp} | {' '.join(o.replace(INV + '.', 'inv.') for o in overrides) or '–'} | "
                f"{step} | {p['seconds']:.1f} | {harness.fmt_ci(p['win_rate'], p['win_low'], p['win_high'])} | "
                f"{harness.fmt_ci(p['mean_gain'], p['gain_low'], p['gain_high'], 4)} | "
                f"{'yes' if p['beats'] else 'no'} | {p['accuracy']:.3f} | {tr} |"
            )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-steps", nargs="+", type=int, default=[20, 40])
    p.add_argument("--eval-seeds", type=int, default=8)
    p.add_argument("--prompts", type=int, default=12)
    p.add_argument("--sample-steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--beta", type=float, default=5000.0)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default=None)
    p.add_argument("--results", default=str(harness.RESULTS))
    p.add_argument("--stem", default="toy_inpo_probe", help="results file name without suffix")
    p.add_argument("--grad-cosine", action="store_true", help="gradient cosines at the base; no training")
    p.add_argument("--world", default="toy", help="the world of --grad-cosine (toy | toy-mixed)")
    args = p.parse_args(argv)
    if max(args.eval_steps) > 60:
        p.error("the probes' budget is at most 60 steps")
    return args


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parsed = parse_args()
    if parsed.grad_cosine:
        print(json.dumps(grad_cosine(parsed), indent=1))
    else:
        run_probes(parsed)
