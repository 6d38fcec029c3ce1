"""The toy-world alignment benchmark: six models against the shipped base, on held-out prompts.

    .venv/bin/python benchmarks/toy_alignment.py            # core: 5 trained methods × 3 seeds (+ base)
    .venv/bin/python benchmarks/toy_alignment.py --quick    # one seed, few steps and items (the test)

Every method (SFT, Diffusion-DPO, Diffusion-KTO, InPO-faithful, InPO-corrected) is trained from the
shipped base ``inpo/assets/toy-base`` on the same prepared pairs (``data/toy/pairs`` → ``inpo prepare``),
through the project's real loop (:func:`inpo.train.loop.train`), once per method and training seed.
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
import copy
import functools
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from evaluation.compare import paired_comparison  # noqa: E402
from inpo.train.run import TrainObserver  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
METHODS_FIGURE = REPO / "docs" / "img" / "toy_methods.png"
PLATEAU_FRACTION = 0.9
INV = "method.inpo.inversion"

# name → (training method, config overrides)
METHODS: dict[str, tuple[str, list[str]]] = {
    "sft": ("sft", []),
    "dpo": ("dpo", []),
    "kto": ("kto", []),
    "inpo-faithful": ("inpo", [f"{INV}.mode=faithful"]),
    "inpo-corrected": ("inpo", [f"{INV}.mode=corrected"]),
}


# ----------------------------------------------------------------------------------------- setup


def make_config(work: Path, overrides: Sequence[str] = ()) -> Any:
    """The project's params.yaml with outputs/checkpoints under ``work`` and absolute data/model paths."""
    from inpo.config import config_from_dict

    base = [
        f"paths.outputs={work / 'outputs'}",
        f"paths.checkpoints={work / 'checkpoints'}",
        f"data.source={REPO / 'data' / 'toy' / 'pairs'}",
        f"model.pretrained={REPO / 'inpo' / 'assets' / 'toy-base'}",
        f"toy.base.out={REPO / 'inpo' / 'assets' / 'toy-base'}",
        f"paths.data={REPO / 'data'}",
        "train.checkpoint_every=100000",  # only the final save: checkpoints are not what is measured
        "train.keep_checkpoints=1",
    ]
    return config_from_dict(copy.deepcopy(params_snapshot()), [*base, *overrides])


@functools.cache
def params_snapshot() -> dict[str, Any]:
    """params.yaml as read once per process: edits made while a benchmark runs do not reach it."""
    from inpo.config import DEFAULT_PARAMS, read_yaml

    return read_yaml(DEFAULT_PARAMS)


def ensure_pairs(cfg: Any) -> Path:
    """``inpo toy pairs`` (if the shard is missing) then ``inpo prepare`` into the private outputs."""
    from inpo import layout
    from inpo.data.filtering import prepare_pairs

    if not (layout.world_pairs_dir(cfg) / "metadata.json").exists():
        from inpo.toyworld.pairs import generate_pairs

        generate_pairs(cfg, cfg.toy.base.out, layout.world_pairs_dir(cfg), progress=False)
    index = layout.pair_index(cfg)
    if not index.exists():
        prepare_pairs(cfg.data, index.parent, progress=False)
    return index


class ForwardCounter(TrainObserver):
    """UNet forward rows by grad mode, counted while ``active`` by a forward pre-hook that this
    training-loop observer puts on the policy's and the reference's UNet."""

    def __init__(self) -> None:
        self.active = True
        self.rows = {"grad": 0, "no_grad": 0}

    def on_start(self, run: Any, unets: list[torch.nn.Module]) -> None:
        for unet in unets:
            unet.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        if not self.active:
            return
        x = args[0] if args else kwargs["sample"]
        self.rows["grad" if torch.is_grad_enabled() else "no_grad"] += int(x.shape[0])


# ------------------------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class EvalItems:
    prompts: list[str]
    seeds: list[int]
    sample_steps: int
    guidance: float

    @property
    def ids(self) -> np.ndarray:
        return np.arange(len(self.prompts))


def eval_items(cfg: Any, n_prompts: int | None, n_seeds: int, sample_steps: int) -> EvalItems:
    """Held-out prompts × seeds 0..n_seeds-1 (prompt-major), the same for every model."""
    from inpo.toyworld.prompts import heldout_prompts

    prompts = heldout_prompts(cfg)[: n_prompts or None]
    return EvalItems(
        [p for p in prompts for _ in range(n_seeds)],
        [s for _ in prompts for s in range(n_seeds)],
        sample_steps,
        cfg.sample.guidance,
    )


def evaluate(components: Any, unet: torch.nn.Module, items: EvalItems, resolution: int) -> dict[str, Any]:
    """Sample every item → ``images`` uint8 [N, 3, H, W], ``scores`` [N], ``accuracy``, ``diversity``."""
    from inpo.sampling import sample_images, to_uint8
    from inpo.toyworld.metrics import diversity, prompt_following
    from inpo.toyworld.oracle import OracleScorer

    images = sample_images(
        components,
        unet,
        items.prompts,
        items.seeds,
        steps=items.sample_steps,
        guidance=items.guidance,
        scheduler="ddim",
        resolution=resolution,
    )
    u8 = to_uint8(images)
    x = u8.float() / 255.0  # what a saved PNG scores
    scores = OracleScorer().score(x, items.prompts).numpy().astype(np.float64)
    follow = prompt_following(x, items.prompts)
    return {
        "images": u8,
        "scores": scores,
        "oracle_mean": float(scores.mean()),
        "accuracy": follow["accuracy"],
        "diversity": diversity(x, items.prompts),
    }


def compare(a: np.ndarray, b: np.ndarray, groups: np.ndarray | None, samples: int = 2000) -> dict[str, Any]:
    """Win-rate and mean gain of ``a`` over ``b`` (paired items) with 95% bootstrap intervals."""
    return paired_comparison(a, b, samples, 0.95, 0, groups)


# -------------------------------------------------------------------------------------- training


@dataclass
class RunRecord:
    """One training run evaluated along the way."""

    name: str
    seed: int
    evals: dict[int, dict[str, Any]] = field(default_factory=dict)  # step → evaluate() + cost
    losses: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    wall_seconds: float = 0.0


def train_and_evaluate(
    work: Path,
    name: str,
    method: str,
    overrides: Sequence[str],
    seed: int,
    eval_steps: Sequence[int],
    items: EvalItems,
    counter: ForwardCounter,
) -> RunRecord:
    """One run of ``method`` from the base for ``max(eval_steps)`` steps, evaluated at ``eval_steps``."""
    from inpo.train.loop import train
    from inpo.train.run import training_run

    steps = sorted(eval_steps)
    every = math.gcd(*steps)
    cfg = make_config(work, [*overrides, f"train.seed={seed}", f"train.validate_every={every}"])
    run_dir = work / "runs" / f"{name}-s{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # fresh: the loop would resume a previous checkpoint
    record = RunRecord(name, seed)

    def validate(step: int, unet: torch.nn.Module, components: Any, out_dir: Path) -> dict[str, float]:
        if step not in steps:
            return {}
        counter.active = False
        try:
            result = evaluate(components, unet, items, cfg.data.resolution)
        finally:
            counter.active = True
        result["rows_grad"] = counter.rows["grad"]
        result["rows_no_grad"] = counter.rows["no_grad"]
        record.evals[step] = result
        return {"oracle_mean": result["oracle_mean"], "accuracy": result["accuracy"]}

    spec = training_run(
        cfg,
        method,
        index_path=ensure_pairs(cfg),
        out_dir=run_dir / "out",
        ckpt_dir=run_dir / "ckpt",
        max_steps=steps[-1],
        validate=validate,
    )
    counter.rows = {"grad": 0, "no_grad": 0}
    started = time.perf_counter()
    train(spec, observer=counter)
    record.wall_seconds = time.perf_counter() - started
    lines = (spec.out_dir / "metrics.jsonl").read_text().splitlines()
    record.metrics = [json.loads(line) for line in lines if line]
    record.losses = [float(m["loss"]) for m in record.metrics]
    seconds = np.cumsum([m["seconds"] for m in record.metrics])
    for step, result in record.evals.items():
        result["seconds"] = float(seconds[step - 1])
        result["pairs"] = step * cfg.train.pairs_per_device * cfg.train.grad_accum
        result["inversion_calls"] = float(sum(m.get("inversion_calls", 0.0) for m in record.metrics[:step]))
    shutil.rmtree(run_dir / "ckpt", ignore_errors=True)
    return record


# -------------------------------------------------------------------------------------- analysis


def summarize(
    base: dict[str, Any], runs: list[RunRecord], items: EvalItems, samples: int
) -> dict[str, dict[str, Any]]:
    """Per method: per seed and pooled statistics at each evaluated step."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r.name for r in runs):
        mine = [r for r in runs if r.name == name]
        steps = sorted(set.intersection(*(set(r.evals) for r in mine)))
        per_step = {}
        for step in steps:
            seeds = {}
            for r in mine:
                e = r.evals[step]
                seeds[str(r.seed)] = {
                    **compare(e["scores"], base["scores"], None, samples),
                    **{k: e[k] for k in ("oracle_mean", "accuracy", "diversity", "seconds", "pairs")},
                    "forward_rows": e["rows_grad"] + e["rows_no_grad"],
                    "forward_rows_grad": e["rows_grad"],
                    "forward_rows_no_grad": e["rows_no_grad"],
                }
            a = np.concatenate([r.evals[step]["scores"] for r in mine])
            b = np.tile(base["scores"], len(mine))
            groups = np.tile(items.ids, len(mine))
            pooled = {
                **compare(a, b, groups, samples),
                **{
                    k: float(np.mean([s[k] for s in seeds.values()]))
                    for k in ("oracle_mean", "accuracy", "diversity", "seconds", "pairs", "forward_rows")
                },
            }
            per_step[str(step)] = {"seeds": seeds, "pooled": pooled}
        out[name] = {
            "steps": per_step,
            "finite_losses": all(math.isfinite(v) for r in mine for v in r.losses),
            "final_loss": {str(r.seed): r.losses[-1] for r in mine},
            "wall_seconds": {str(r.seed): r.wall_seconds for r in mine},
        }
    return out


def cost_to_reach(summary: dict[str, dict[str, Any]], reference: str = "dpo") -> dict[str, Any]:
    """Pairs / forward rows / seconds at the first evaluated step whose pooled mean gain reaches
    ``PLATEAU_FRACTION`` × the reference's best pooled mean gain (its plateau)."""
    if reference not in summary:
        return {}
    best_step, best = max(
        ((int(s), v["pooled"]["mean_gain"]) for s, v in summary[reference]["steps"].items()),
        key=lambda x: x[1],
    )
    target = PLATEAU_FRACTION * best
    out: dict[str, Any] = {
        "reference": reference,
        "plateau": best,
        "plateau_step": best_step,
        "target": target,
    }
    for name, s in summary.items():
        hit = next(
            (int(k) for k in sorted(s["steps"], key=int) if s["steps"][k]["pooled"]["mean_gain"] >= target),
            None,
        )
        if hit is None or best <= 0:
            out[name] = None
            continue
        pooled = s["steps"][str(hit)]["pooled"]
        out[name] = {k: pooled[k] for k in ("pairs", "forward_rows", "seconds")} | {"step": hit}
    return out


# ---------------------------------------------------------------------------------------- output


def fmt_ci(est: float, low: float, high: float, digits: int = 3) -> str:
    return f"{est:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown(payload: dict[str, Any]) -> str:
    s, base = payload["summary"], payload["base"]
    setup = payload["setup"]
    lines = [
        "# Toy-world alignment benchmark",
        "",
        f"{setup['n_items']} items ({setup['n_prompts']} held-out prompts × {setup['eval_seeds']} seeds), "
        f"DDIM {setup['sample_steps']} steps, guidance {setup['guidance']}; training seeds "
        f"{setup['train_seeds']}; batch {setup['batch']} pairs, lr {setup['learning_rate']}, β "
        f"{setup['beta']}; InPO {setup['inversion_steps']} inversion steps ({setup['inversion_model']}, "
        f"eta {setup['inversion_eta']}). Torch threads {setup['threads']}, wall {payload['wall_seconds']:.0f} s "
        f"on a shared {setup['cpus']}-CPU machine.",
        "",
        f"Base: oracle mean {base['oracle_mean']:.3f}, prompt-following accuracy {base['accuracy']:.3f}, "
        f"diversity {base['diversity']:.3f}.",
        "",
        "Pooled over training seeds (95% bootstrap over items; an item's seeds resampled together). "
        "**beats** = win-rate low > 0.5 and mean-gain low > 0.",
        "",
        "| method | step | pairs | fwd rows | train s | win-rate vs base | mean gain | beats | oracle | "
        "accuracy | diversity |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in s.items():
        for step, v in m["steps"].items():
            p = v["pooled"]
            lines.append(
                f"| {name} | {step} | {p['pairs']:.0f} | {p['forward_rows']:.0f} | {p['seconds']:.1f} | "
                f"{fmt_ci(p['win_rate'], p['win_low'], p['win_high'])} | "
                f"{fmt_ci(p['mean_gain'], p['gain_low'], p['gain_high'], 4)} | {'yes' if p['beats'] else 'no'} | "
                f"{p['oracle_mean']:.3f} | {p['accuracy']:.3f} | {p['diversity']:.3f} |"
            )
    lines += [
        "",
        "## Per training seed",
        "",
        "| method | step | seed | win-rate | mean gain | beats | accuracy |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for name, m in s.items():
        for step, v in m["steps"].items():
            for seed, p in v["seeds"].items():
                lines.append(
                    f"| {name} | {step} | {seed} | {fmt_ci(p['win_rate'], p['win_low'], p['win_high'])} | "
                    f"{fmt_ci(p['mean_gain'], p['gain_low'], p['gain_high'], 4)} | "
                    f"{'yes' if p['beats'] else 'no'} | {p['accuracy']:.3f} |"
                )
    c = payload["cost_to_reach"]
    if c:
        lines += [
            "",
            f"## Cost to reach DPO's plateau (best pooled mean gain {c['plateau']:.4f} at step "
            f"{c['plateau_step']}; reached = pooled mean gain ≥ {PLATEAU_FRACTION:.0%} of it = {c['target']:.4f})",
            "",
            "| method | step | pairs seen | UNet forward rows | training seconds |",
            "|---|---|---|---|---|",
        ]
        for name in s:
            r = c.get(name)
            if r is None:
                lines.append(f"| {name} | not reached | – | – | – |")
            else:
                lines.append(
                    f"| {name} | {r['step']} | {r['pairs']:.0f} | {r['forward_rows']:.0f} | {r['seconds']:.1f} |"
                )
    return "\n".join(lines) + "\n"


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for name, m in payload["summary"].items():
        steps = [int(k) for k in m["steps"]]
        pooled = [v["pooled"] for v in m["steps"].values()]
        secs = [p["seconds"] for p in pooled]
        for row, (key, lo, hi) in enumerate(
            (("win_rate", "win_low", "win_high"), ("mean_gain", "gain_low", "gain_high"))
        ):
            est = np.array([p[key] for p in pooled])
            err = np.array([[p[key] - p[lo] for p in pooled], [p[hi] - p[key] for p in pooled]])
            for col, x in enumerate((steps, secs)):
                axes[row, col].errorbar(x, est, yerr=err, marker="o", capsize=3, label=name)
    for row, (label, ref) in enumerate((("oracle win-rate vs base", 0.5), ("mean oracle gain vs base", 0.0))):
        for col, xlabel in enumerate(("optimizer steps", "training seconds (mean over seeds)")):
            ax = axes[row, col]
            ax.axhline(ref, color="grey", lw=0.8, ls="--")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(label)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Toy world: pooled over training seeds, 95% bootstrap intervals")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def methods_figure(
    base: dict[str, Any], runs: list[RunRecord], items: EvalItems, path: Path, n_seeds: int = 2
) -> None:
    """Rows: base then each method (training seed 0, last step), for seeds 0..n_seeds-1; columns: prompts."""
    from PIL import Image, ImageDraw

    from inpo.toyworld.figures import LABEL_WIDTH, _upscale

    prompts = list(dict.fromkeys(items.prompts))
    pick = [
        [i for i, (p, s) in enumerate(zip(items.prompts, items.seeds)) if s == seed]
        for seed in range(n_seeds)
    ]
    first = {}
    for r in runs:
        if r.name not in first:
            first[r.name] = r.evals[max(r.evals)]["images"]
    rows = [("base", base["images"])] + list(first.items())
    scale, pad = 4, 2
    side = int(base["images"].shape[-1]) * scale
    grid = Image.new(
        "RGB",
        (LABEL_WIDTH + len(prompts) * (side + pad), len(rows) * n_seeds * (side + pad) + pad),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(grid)
    y = pad
    for name, images in rows:
        for seed in range(n_seeds):
            draw.text((4, y + side // 2 - 5), f"{name} (seed {seed})", fill=(0, 0, 0))
            for c, i in enumerate(pick[seed]):
                img = Image.fromarray(images[i].permute(1, 2, 0).numpy(), mode="RGB")
                grid.paste(_upscale(img, scale), (LABEL_WIDTH + c * (side + pad), y))
            y += side + pad
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    grid.save(tmp)
    os.replace(tmp, path)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------- main


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
    cfg = make_config(work, overrides)
    items = eval_items(cfg, args.prompts, args.eval_seeds, args.sample_steps)
    base_components = load_components(cfg.model)
    base = evaluate(base_components, base_components.unet, items, cfg.data.resolution)
    del base_components
    counter = ForwardCounter()
    runs: list[RunRecord] = []
    for seed in args.seeds:
        for name in args.methods:
            method, extra = METHODS[name]
            t0 = time.perf_counter()
            runs.append(
                train_and_evaluate(
                    work, name, method, [*overrides, *extra], seed, args.eval_steps, items, counter
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
    payload = {
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
        "wall_seconds": time.perf_counter() - started,
        "complete": len(runs) == len(args.seeds) * len(args.methods),
    }
    return payload


def write_outputs(
    args: argparse.Namespace,
    payload: dict[str, Any],
    runs: list[RunRecord],
    base: dict[str, Any],
    items: EvalItems,
    figure: bool = False,
) -> None:
    stem = "toy_alignment_quick" if args.quick else "toy_alignment"
    out = Path(args.results)
    write_atomic(out / f"{stem}.json", json.dumps(payload, indent=1))
    write_atomic(out / f"{stem}.md", markdown(payload))
    plot(payload, out / f"{stem}.png")
    if figure:
        methods_figure(base, runs, items, METHODS_FIGURE)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one seed, few steps, few items (the test suite)")
    p.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
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
    args.methods = args.methods or list(METHODS)
    args.seeds = args.seeds or ([0] if quick else [0, 1, 2])
    args.eval_steps = args.eval_steps or ([40] if quick else [25, 50, 100])
    args.eval_seeds = args.eval_seeds or (8 if quick else 16)
    args.prompts = args.prompts or (None if not quick else 12)
    args.lr = args.lr or (1e-5 if quick else 3e-6)
    return args


if __name__ == "__main__":
    run_benchmark(parse_args())
