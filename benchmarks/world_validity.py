"""A world's validity check, run before any InPO run in it, and its committed manifest.

    .venv/bin/python -m benchmarks.world_validity --world toy-mixed          # the check; records an attempt
    .venv/bin/python -m benchmarks.world_validity --world toy-mixed --quick  # base, SFT, DPO at one seed (the test)

The check (issue 10's protocol, fixed before InPO ran in the world): SFT on the winners and
Diffusion-DPO each *beat* the world's base (win-rate low > 0.5 and mean-gain low > 0, 95% bootstrap
over items, pooled over training seeds 0, 1, 2) at 100 steps, evaluation DDIM 10 steps at guidance
7.5 on 12 held-out prompts × 16 seeds, with world toy's benchmark hyperparameters frozen: lr 3e-6,
β 5000, batch 16 pairs, SFT at the same lr, caption dropout 0.2 (:data:`PROTOCOL`).

Every full run appends an *attempt* to ``benchmarks/manifests/<world>.json``: the world's key (its
pair settings and the content hash of its bases: :func:`benchmarks.harness.pairs_key`), the pairs'
label statistics, the arms' hyperparameters and results, and the verdict. The first passing attempt
is final (``validated``); later attempts are refused. The manifest carries a sha256 of its content.
:func:`benchmarks.harness.require_validated_world` refuses InPO arms in a world without a validated
manifest whose key matches the world as configured now.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from . import harness
from .alignment_report import summarize

PROTOCOL: dict[str, Any] = {
    "arms": {"sft": ("sft", []), "dpo": ("dpo", [])},
    "overrides": [
        "train.learning_rate=3e-6",
        "method.dpo.beta=5000",
        "train.pairs_per_device=16",
        "train.grad_accum=1",
        "data.caption_dropout=0.2",
    ],
    "train_seeds": [0, 1, 2],
    "steps": 100,
    "eval_seeds": 16,
    "sample_steps": 10,
    "guidance": 7.5,
    "bootstrap": 2000,
}
QUICK: dict[str, Any] = {  # the protocol at one training seed, 8 sampling seeds, a quarter of the pairs
    **PROTOCOL,
    "train_seeds": [0],
    "eval_seeds": 8,
    "pairs_per_prompt": 5,  # 540 pairs (the world's own 2160 take ~5 min to sample on one core)
}


def run_check(world: str, settings: dict[str, Any], work: Path, threads: int = 1) -> dict[str, Any]:
    """Train and evaluate the protocol's arms in ``world`` → payload with per-arm pooled results and
    ``passed`` (every arm beats the base)."""
    from inpo.models import load_components

    torch.set_num_threads(threads)
    started = time.perf_counter()
    overrides = [*settings["overrides"], f"sample.guidance={settings['guidance']}"]
    data = None
    if "pairs_per_prompt" in settings:
        overrides.append(f"toy.pairs.pairs_per_prompt={settings['pairs_per_prompt']}")
        data = f"{world}-{settings['pairs_per_prompt']}-per-prompt"  # apart from the world's own pairs
    cfg = harness.make_config(work, overrides, world=world, data=data)
    harness.ensure_pairs(cfg)
    items = harness.eval_items(cfg, None, settings["eval_seeds"], settings["sample_steps"])
    components = load_components(cfg.model)
    base = harness.evaluate(components, components.unet, items, cfg.data.resolution)
    del components
    counter = harness.ForwardCounter()
    runs = []
    for seed in settings["train_seeds"]:
        for name, (method, extra) in settings["arms"].items():
            runs.append(
                harness.train_and_evaluate(
                    work,
                    name,
                    method,
                    [*overrides, *extra],
                    seed,
                    [settings["steps"]],
                    items,
                    counter,
                    world,
                    data,
                )
            )
            print(f"[{world} {name} seed {seed}] {time.perf_counter() - started:.0f}s", flush=True)
    summary = summarize(base, runs, items, settings["bootstrap"])
    step = str(settings["steps"])
    results = {name: s["steps"][step]["pooled"] for name, s in summary.items()}
    return {
        "world": world,
        "world_key": harness.pairs_key(cfg),
        "pairs": _pairs_record(cfg),
        "protocol": {k: v for k, v in settings.items() if k != "arms"}
        | {"arms": {k: list(v) for k, v in settings["arms"].items()}},
        "base": {k: base[k] for k in ("oracle_mean", "accuracy", "diversity")},
        "results": results,
        "per_seed": {name: s["steps"][step]["seeds"] for name, s in summary.items()},
        "passed": all(bool(r["beats"]) for r in results.values()),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _pairs_record(cfg: Any) -> dict[str, Any]:
    from inpo import layout

    meta = json.loads((layout.world_pairs_dir(cfg) / "metadata.json").read_text())
    return {k: meta[k] for k in ("pairs", "labels", "generators", "oracle_mean") if k in meta}


def record_attempt(path: Path, attempt: dict[str, Any]) -> dict[str, Any]:
    """Append ``attempt`` to the manifest at ``path`` (refused once a version passed); rehash; write."""
    manifest = harness.read_manifest(path) if path.exists() else {"world": attempt["world"], "attempts": []}
    if manifest.get("validated") is not None:
        raise SystemExit(
            f"{path}: world {manifest['world']!r} was validated by attempt {manifest['validated']['version']}; "
            "the first passing version is final (protocol), so no further attempt is recorded"
        )
    attempt = {"version": len(manifest["attempts"]) + 1, **attempt}
    manifest["attempts"].append(attempt)
    if attempt["passed"]:
        manifest["validated"] = {"version": attempt["version"], "world_key": attempt["world_key"]}
    else:
        manifest["validated"] = None
    manifest.pop("sha256", None)
    manifest["sha256"] = harness.manifest_hash(manifest)
    harness.write_atomic(path, json.dumps(manifest, indent=1) + "\n")
    return manifest


def markdown(attempt: dict[str, Any]) -> str:
    lines = [
        f"# Validity check of world {attempt['world']}",
        "",
        f"Base: oracle mean {attempt['base']['oracle_mean']:.3f}, prompt following {attempt['base']['accuracy']:.3f}.",
        f"Pairs: {json.dumps(attempt['pairs'].get('labels', {}))}",
        "",
        "| arm | win-rate vs base | mean gain | beats |",
        "|---|---|---|---|",
    ]
    for name, r in attempt["results"].items():
        lines.append(
            f"| {name} | {harness.fmt_ci(r['win_rate'], r['win_low'], r['win_high'])} | "
            f"{harness.fmt_ci(r['mean_gain'], r['gain_low'], r['gain_high'], 4)} | {'yes' if r['beats'] else 'no'} |"
        )
    lines += ["", f"**{'passed' if attempt['passed'] else 'failed'}**"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", default="toy-mixed")
    p.add_argument("--quick", action="store_true", help="one seed, a quarter of the pairs: no manifest entry")
    p.add_argument("--work", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--manifests", default=str(harness.MANIFESTS))
    args = p.parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="world_validity_"))
    attempt = run_check(args.world, QUICK if args.quick else PROTOCOL, work, args.threads)
    print(markdown(attempt))
    if not args.quick:
        manifest = record_attempt(Path(args.manifests) / f"{args.world}.json", attempt)
        harness.write_atomic(Path(args.manifests) / f"{args.world}.md", markdown(attempt))
        print(f"manifest sha256 {manifest['sha256']}")
    return attempt


if __name__ == "__main__":
    main()
