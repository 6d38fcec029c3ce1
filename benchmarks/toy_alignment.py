"""The toy-world alignment benchmark: six models against the shipped base, on held-out prompts.

    .venv/bin/python -m benchmarks.toy_alignment            # core: 5 trained methods × 3 seeds (+ base)
    .venv/bin/python -m benchmarks.toy_alignment --quick    # one seed, few steps and items (the test)

Every method (SFT, Diffusion-DPO, Diffusion-KTO, InPO-faithful, InPO-corrected) is trained from the
shipped base ``inpo/assets/toy-base`` on the same prepared pairs (``data/toy/pairs`` → ``inpo prepare``),
through the benchmark harness (:mod:`benchmarks.harness`: the stages' own functions), once per method and training seed.
A validation hook evaluates the policy at the evaluation steps along the way (``--eval-steps``), so
every checkpoint of a run is "the same run stopped earlier".

Evaluation items: every held-out prompt × ``--eval-seeds`` fixed seeds, the same for every model;
DDIM with ``sample.guidance`` and ``--sample-steps`` steps. Per item the oracle score, compared with
the base's image of the same item: win-rate and mean gain, each with a 95% percentile bootstrap
interval over items (2000 replicates; pooled over training seeds, an item's seeds are resampled
together). A method *beats* the base when both lower bounds clear 0.5 and 0 (evaluation.stats.beats).
Guard metrics: prompt-following accuracy and diversity (toyworld.metrics).

Cost at each evaluated step: pairs seen (steps × batch), UNet forward rows with and without grad
(a forward pre-hook on the loaded UNet, which the reference's deep copy inherits; sampling for the
evaluation is not counted) and training seconds (the loop's per-step ``seconds``, evaluation
excluded). DPO's plateau = DPO's best pooled mean gain over the evaluated steps; a method reaches it
at the first evaluated step whose pooled mean gain is ≥ ``PLATEAU_FRACTION`` of it.

Outputs: ``benchmarks/results/toy_alignment{,_quick}.{json,md,png}`` and ``docs/img/toy_methods.png``.
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

import torch

from .alignment_report import cost_to_reach, markdown, methods_figure, plot, summarize
from .claims import HEAD_TO_HEAD, claims, head_to_head
from .harness import (
    INV,
    REPO,
    RESULTS,
    Arms,
    EvalItems,
    ForwardCounter,
    RunRecord,
    eval_items,
    evaluate,
    make_config,
    train_and_evaluate,
    write_atomic,
)

METHODS_FIGURE = REPO / "docs" / "img" / "toy_methods.png"
FROM_SFT = "@sft"  # in an arm's overrides: the sft arm's final UNet of the same training seed
STEMS = {"toy": "toy_alignment", "toy-mixed": "toy_mixed_alignment"}

ARMS: Arms = {
    "sft": ("sft", []),
    "dpo": ("dpo", []),
    "kto": ("kto", []),
    "inpo-faithful": ("inpo", [f"{INV}.mode=faithful"]),
    "inpo-corrected": ("inpo", [f"{INV}.mode=corrected"]),
    # the paper's SD1.5 recipe: SFT first (the sft arm of the same seed), then policy and reference
    # both start from the SFT model; DPO likewise, so the recipe is compared fairly
    "sft-dpo": ("dpo", [f"model.unet={FROM_SFT}"]),
    "sft-inpo": ("inpo", [f"{INV}.mode=corrected", f"model.unet={FROM_SFT}"]),
}
CORE = ["sft", "dpo", "kto", "inpo-faithful", "inpo-corrected"]  # the arms of the committed world-toy table


def arm_overrides(work: Path, name: str, seed: int, runs: list[RunRecord], arms: Arms = ARMS) -> list[str]:
    """The arm's overrides with ``FROM_SFT`` replaced by the sft arm's final UNet of this seed."""
    method, extra = arms[name]
    if not any(FROM_SFT in o for o in extra):
        return list(extra)
    if not any(r.name == "sft" and r.seed == seed for r in runs):
        raise SystemExit(f"arm {name} starts from the sft arm: list sft before it (--methods)")
    unet = work / "runs" / f"sft-s{seed}" / "out" / "unet"
    return [o.replace(FROM_SFT, str(unet)) for o in extra]


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from inpo.models import load_components

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="toy_alignment_"))
    overrides = [
        f"train.learning_rate={args.lr}",
        f"method.dpo.beta={args.beta}",
        f"method.inpo.beta={args.beta}",
        f"method.kto.beta={args.beta}",
        *args.set,
    ]
    data = None
    if args.pairs_per_prompt:  # a smaller version of the world's pairs, in its own data folder
        overrides.append(f"toy.pairs.pairs_per_prompt={args.pairs_per_prompt}")
        data = f"{args.world}-{args.pairs_per_prompt}-per-prompt"
    cfg = make_config(work, overrides, args.world, data)
    items = eval_items(cfg, args.prompts, args.eval_seeds, args.sample_steps)
    base_components = load_components(cfg.model)
    base = evaluate(base_components, base_components.unet, items, cfg.data.resolution)
    del base_components
    counter = ForwardCounter()
    runs: list[RunRecord] = []
    for seed in args.seeds:
        for name in args.methods:
            method, extra = ARMS[name][0], arm_overrides(work, name, seed, runs)
            t0 = time.perf_counter()
            runs.append(
                train_and_evaluate(
                    work,
                    name,
                    method,
                    [*overrides, *extra],
                    seed,
                    args.eval_steps,
                    items,
                    counter,
                    args.world,
                    data,
                )
            )
            last = runs[-1].evals[max(runs[-1].evals)]
            print(
                f"[{name} seed {seed}] {time.perf_counter() - t0:.1f}s  oracle {last['oracle_mean']:.3f} "
                f"(base {base['oracle_mean']:.3f})  acc {last['accuracy']:.3f}",
                flush=True,
            )
        if args.write:
            write_outputs(
                args, build_payload(args, cfg, items, base, runs, overrides, started), runs, base, items
            )
    payload = build_payload(args, cfg, items, base, runs, overrides, started)
    if args.write:
        write_outputs(args, payload, runs, base, items, figure=not args.quick)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return payload


def build_payload(
    args: argparse.Namespace,
    cfg: Any,
    items: EvalItems,
    base: dict[str, Any],
    runs: list[RunRecord],
    overrides: list[str],
    started: float,
) -> dict[str, Any]:
    summary = summarize(base, runs, items, args.bootstrap)
    pairs = [head_to_head(runs, a, b, items, args.bootstrap) for a, b in HEAD_TO_HEAD]
    payload = {
        "world": args.world,
        "setup": {
            "n_items": len(items.prompts),
            "n_prompts": len(set(items.prompts)),
            "eval_seeds": args.eval_seeds,
            "sample_steps": items.sample_steps,
            "guidance": items.guidance,
            "train_seeds": list(args.seeds),
            "eval_steps": sorted(args.eval_steps),
            "batch": cfg.train.pairs_per_device * cfg.train.grad_accum,
            "learning_rate": cfg.train.learning_rate,
            "beta": args.beta,
            "inversion_steps": cfg.method.inpo.inversion.steps,
            "inversion_model": cfg.method.inpo.inversion.model,
            "inversion_eta": cfg.method.inpo.inversion.eta,
            "overrides": overrides,
            "bootstrap": args.bootstrap,
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "machine": platform.platform(),
            "load_average_end": list(os.getloadavg()),
        },
        "base": {k: base[k] for k in ("oracle_mean", "accuracy", "diversity")},
        "summary": summary,
        "cost_to_reach": cost_to_reach(summary),
        "head_to_head": [h for h in pairs if h is not None],
        # per-item oracle scores (items in setup order), so any further head-to-head is recomputable
        "item_scores": {
            "base": [round(float(v), 6) for v in base["scores"]],
            **{
                f"{r.name}/s{r.seed}/{step}": [round(float(v), 6) for v in e["scores"]]
                for r in runs
                for step, e in sorted(r.evals.items())
            },
        },
        "wall_seconds": time.perf_counter() - started,
        "complete": len(runs) == len(args.seeds) * len(args.methods),
    }
    payload["claims"] = claims(payload)
    return payload


def write_outputs(
    args: argparse.Namespace,
    payload: dict[str, Any],
    runs: list[RunRecord],
    base: dict[str, Any],
    items: EvalItems,
    figure: bool = False,
) -> None:
    stem = STEMS[args.world] + ("_quick" if args.quick else "")
    stem += f"_{args.pairs_per_prompt}pp" if args.pairs_per_prompt else ""
    out = Path(args.results)
    write_atomic(out / f"{stem}.json", json.dumps(payload, indent=1))
    write_atomic(out / f"{stem}.md", markdown(payload))
    plot(payload, out / f"{stem}.png")
    if figure:
        methods_figure(
            base,
            runs,
            items,
            METHODS_FIGURE.with_name(f"{STEMS[args.world].replace('_alignment', '')}_methods.png"),
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one seed, few steps, few items (the test suite)")
    p.add_argument("--world", default="toy", choices=list(STEMS))
    p.add_argument(
        "--pairs-per-prompt", type=int, default=None, help="fewer pairs than the world's (the test suite: 5)"
    )
    p.add_argument("--methods", nargs="+", default=None, choices=list(ARMS))
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="training seeds (train.seed)")
    p.add_argument("--eval-steps", nargs="+", type=int, default=None)
    p.add_argument("--eval-seeds", type=int, default=None, help="fixed sampling seeds per held-out prompt")
    p.add_argument("--prompts", type=int, default=None, help="first N held-out prompts (default: all 12)")
    p.add_argument("--sample-steps", type=int, default=10, help="DDIM steps of the evaluation samples")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--beta", type=float, default=5000.0)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", nargs="*", default=[], help="extra config overrides key=value")
    p.add_argument("--work", default=None, help="scratch folder (default: a temp dir, removed)")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--no-write", dest="write", action="store_false")
    args = p.parse_args(argv)
    quick = args.quick
    args.methods = args.methods or (CORE if args.world == "toy" and quick else list(ARMS))
    args.seeds = args.seeds or ([0] if quick else [0, 1, 2])
    args.eval_steps = args.eval_steps or ([40] if quick else [25, 50, 100])
    args.eval_seeds = args.eval_seeds or (8 if quick else 16)
    args.prompts = args.prompts or (None if not quick else 12)
    args.lr = args.lr or (1e-5 if quick else 3e-6)
    return args


if __name__ == "__main__":
    run_benchmark(parse_args())
