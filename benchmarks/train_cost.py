"""What a training step costs per method, on one tiny model, batch and machine in one run.

    .venv/bin/python -m benchmarks.train_cost                      # tiny SD1.5 built in a temp dir
    .venv/bin/python -m benchmarks.train_cost --resolution 64 --pairs-per-device 4 --threads 1
    .venv/bin/python -m benchmarks.train_cost --family sd2    # tiny SD2 v-prediction → train_cost_sd2.*
    .venv/bin/python -m benchmarks.train_cost --family flow   # tiny flow-matching model → train_cost_flow.*
    .venv/bin/python -m benchmarks.train_cost --family sd3    # tiny SD3.5 transformer → train_cost_sd3.*

For DPO, InPO-faithful (10 inversion steps), InPO-corrected (3, 5, 10), InPO with the cached reference
inversion (corrected and faithful, 10 steps), SFT, and DPO with the embedding cache, each in its own
subprocess (so peak memory is per run): seconds per optimizer step and pairs/s after the warm-up steps,
the ratio to DPO, UNet forward passes per pair (a forward hook on the UNet counts calls and rows, with
and without grad), and peak resident memory (``ru_maxrss``; CUDA peak when on a GPU).

Warm-up is the first epoch, excluded from the timings; it is also what fills the inversion cache, so
the measured (second) epoch of a cached run is its steady state. Flips and caption dropout are off for
every variant so one epoch holds every cache key (they change no cost). The fill epoch's cost of the
cached runs is reported too. Results: ``benchmarks/results/train_cost.{json,md}``.

Physics (spec §4): with 10 inversion steps InPO costs ≈ 6.4 (faithful) / ≈ 5.5 (corrected) extra no-grad
forward passes per image; a DPO step is 2 forward+backward and 2 no-grad passes per pair, so an InPO
step should cost no more than about 2.6× a DPO step, and a cached one about a DPO step plus one no-grad
pass per image. On a tiny CPU model per-call overhead weighs more than rows, so also see calls per step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inpo.train.run import TrainObserver

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WORDS = ["a", "photo", "of", "red", "blue", "green", "cat", "dog", "circle", "square"]

INV = "method.inpo.inversion"
CACHED = [f"{INV}.model=reference", f"{INV}.eta=0", f"{INV}.cache=true"]
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "dpo": ("dpo", []),
    "inpo-faithful-10": ("inpo", [f"{INV}.mode=faithful", f"{INV}.steps=10"]),
    "inpo-corrected-3": ("inpo", [f"{INV}.mode=corrected", f"{INV}.steps=3"]),
    "inpo-corrected-5": ("inpo", [f"{INV}.mode=corrected", f"{INV}.steps=5"]),
    "inpo-corrected-10": ("inpo", [f"{INV}.mode=corrected", f"{INV}.steps=10"]),
    "inpo-cached-corrected-10": ("inpo", [f"{INV}.mode=corrected", f"{INV}.steps=10", *CACHED]),
    "inpo-cached-faithful-10": ("inpo", [f"{INV}.mode=faithful", f"{INV}.steps=10", *CACHED]),
    "sft": ("sft", []),
    "dpo-embedding-cache": ("dpo", ["train.cache_embeddings=true"]),
}


FLOW_VARIANTS = ["dpo", "inpo-corrected-3", "inpo-corrected-5", "inpo-corrected-10", "sft"]
# family → (model description, the variants that apply; flow models invert deterministically, uncached)
FAMILY_SETUPS: dict[str, tuple[str, list[str]]] = {
    "sd15": ("tiny SD1.5 (inpo.testing.write_tiny_sd15)", list(VARIANTS)),
    "sd2": ("tiny SD2, v-prediction (inpo.testing.write_tiny_sd2)", list(VARIANTS)),
    "flow": (
        "tiny pixel-space flow-matching UNet, shift 3 (inpo.testing.write_tiny_pixel)",
        FLOW_VARIANTS,
    ),
    "sd3": ("tiny SD3.5-architecture MMDiT, flow matching (inpo.testing.write_tiny_sd3)", FLOW_VARIANTS),
}


def prepare_whole_batches(args: argparse.Namespace, root: Path) -> int:
    """Prepare the pair index with a multiple of the batch size (``data.max_pairs``), so every epoch
    shows every pair and the warm-up epoch fills the whole inversion cache; returns that pair count."""
    from inpo import layout
    from inpo.config import DEFAULT_PARAMS, config_from_dict, read_yaml
    from inpo.data.filtering import prepare_pairs
    from inpo.data.index import read_pair_index

    overrides = base_overrides(args, root / "model", root / "fixture", root)
    cfg = config_from_dict(read_yaml(DEFAULT_PARAMS), overrides)
    prepare_pairs(cfg.data, layout.pair_index(cfg).parent, progress=False)
    n = len(read_pair_index(layout.pair_index(cfg)))
    whole = n - n % args.pairs_per_device
    cfg = config_from_dict(read_yaml(DEFAULT_PARAMS), [*overrides, f"data.max_pairs={whole}"])
    prepare_pairs(cfg.data, layout.pair_index(cfg).parent, progress=False)
    return whole


def build_world(root: Path, n_rows: int, family: str = "sd15", resolution: int = 32) -> dict[str, Path]:
    from inpo.data.fixtures import write_pickapic_fixture
    from inpo.testing import write_tiny_pixel, write_tiny_sd2, write_tiny_sd3, write_tiny_sd15

    model, fixture = root / "model", root / "fixture"
    if not model.exists():
        if family == "flow":
            write_tiny_pixel(model, words=WORDS, image_size=resolution, flow_shift=3.0)
        else:
            writers = {"sd15": write_tiny_sd15, "sd2": write_tiny_sd2, "sd3": write_tiny_sd3}
            writers[family](model, words=WORDS)
    if not fixture.exists():
        write_pickapic_fixture(fixture, n_rows=n_rows, n_ties=2, n_corrupt=2, n_shards=2)
    return {"model": model, "fixture": fixture}


def base_overrides(args: argparse.Namespace, model: Path, fixture: Path, root: Path) -> list[str]:
    family = {
        "flow": ["model.family=toy", "world=pickapic", "method.inpo.inversion.eta=0"],  # a pixel-space flow
        "sd3": ["model.family=sd3", "method.inpo.inversion.eta=0"],
    }.get(args.family, [f"model.family={args.family}"])
    return [
        *family,
        f"model.pretrained={model}",
        f"data.source={fixture}",
        f"data.resolution={args.resolution}",
        "data.random_flip=false",
        "data.caption_dropout=0",
        f"train.pairs_per_device={args.pairs_per_device}",
        "train.checkpoint_every=100000",
        "train.validate_every=100000",
        f"paths.outputs={root / 'outputs'}",
        f"paths.checkpoints={root / 'checkpoints'}",
    ]


# ------------------------------------------------------------------------------------------------
# One variant, in its own process
# ------------------------------------------------------------------------------------------------
class ForwardCounter(TrainObserver):
    """Counts UNet forward calls and rows per optimizer step, split by grad mode: a training-loop
    observer that puts a forward pre-hook on the policy's and the reference's UNet."""

    def __init__(self) -> None:
        self.per_step: list[dict[str, int]] = []

    def on_start(self, run, unets) -> None:  # noqa: ANN001
        for unet in unets:
            unet.register_forward_pre_hook(self.hook, with_kwargs=True)

    def on_step_start(self, step: int) -> None:
        self.per_step.append({"calls_grad": 0, "rows_grad": 0, "calls_no_grad": 0, "rows_no_grad": 0})

    def hook(self, module, args, kwargs) -> None:  # noqa: ANN001
        import torch

        if not self.per_step:
            return
        x = args[0] if args else kwargs["sample"]
        mode = "grad" if torch.is_grad_enabled() else "no_grad"
        counts = self.per_step[-1]
        counts[f"calls_{mode}"] += 1
        counts[f"rows_{mode}"] += int(x.shape[0])


def run_variant(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from inpo import layout
    from inpo.config import DEFAULT_PARAMS, config_from_dict, read_yaml
    from inpo.train.batches import BatchLayout
    from inpo.train.loop import train
    from inpo.train.run import training_run

    root = Path(args.root)
    method, extra = VARIANTS[args.worker]
    overrides = base_overrides(args, root / "model", root / "fixture", root) + extra
    overrides.append(f"data.max_pairs={args.max_pairs}")
    probe = config_from_dict(read_yaml(DEFAULT_PARAMS), overrides)
    index = layout.pair_index(probe)
    from inpo.data.index import read_pair_index

    steps_per_epoch = BatchLayout(len(read_pair_index(index)), args.pairs_per_device).steps_per_epoch
    warmup = steps_per_epoch
    measured = min(args.measure_steps, steps_per_epoch) if args.measure_steps else steps_per_epoch
    cfg = config_from_dict(read_yaml(DEFAULT_PARAMS), [*overrides, f"train.max_steps={warmup + measured}"])

    counter = ForwardCounter()
    tag = f"{args.worker}-round{args.round}"  # fresh folders: a second round must not resume the first
    spec = training_run(
        cfg,
        method,
        index_path=index,
        out_dir=root / "outputs" / "train" / tag,
        ckpt_root=root / "checkpoints" / "runs" / tag,
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = train(spec, observer=counter)
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in result.metrics_path.read_text().splitlines() if line]
    seconds = [r["seconds"] for r in records[warmup:]]
    fill = [r["seconds"] for r in records[1:warmup]]  # warm-up without the first step's one-off costs
    pairs = args.pairs_per_device * cfg.train.grad_accum
    counts = counter.per_step[warmup:]
    total = {k: sum(c[k] for c in counts) for k in counts[0]}
    n = len(counts)
    return {
        "variant": args.worker,
        "method": method,
        "overrides": extra,
        "warmup_steps": warmup,
        "measured_steps": len(seconds),
        "pairs_per_step": pairs,
        "step_seconds": seconds,
        "seconds_per_step": statistics.mean(seconds),
        "seconds_per_step_median": statistics.median(seconds),
        "seconds_per_step_stdev": statistics.stdev(seconds) if len(seconds) > 1 else 0.0,
        "pairs_per_s": pairs / statistics.median(seconds),
        "warmup_seconds_per_step": statistics.mean(fill) if fill else float("nan"),
        "inversion_seconds_per_step": statistics.mean(
            r.get("inversion_seconds", 0.0) for r in records[warmup:]
        ),
        "unet_rows_per_pair": (total["rows_grad"] + total["rows_no_grad"]) / (n * pairs),
        "unet_rows_per_pair_grad": total["rows_grad"] / (n * pairs),
        "unet_rows_per_pair_no_grad": total["rows_no_grad"] / (n * pairs),
        "unet_calls_per_step": (total["calls_grad"] + total["calls_no_grad"]) / n,
        "cache_hits_measured": sum(r.get("inversion_cache_hits", 0.0) for r in records[warmup:]),
        "cache_misses_measured": sum(r.get("inversion_cache_misses", 0.0) for r in records[warmup:]),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "wall_seconds": wall,
    }


# ------------------------------------------------------------------------------------------------
# The driver
# ------------------------------------------------------------------------------------------------
def run_once(args: argparse.Namespace, root: Path, name: str, round_index: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.train_cost", "--worker", name, "--root", str(root)]
    cmd += ["--round", str(round_index)]
    cmd += ["--resolution", str(args.resolution), "--pairs-per-device", str(args.pairs_per_device)]
    cmd += ["--measure-steps", str(args.measure_steps), "--threads", str(args.threads)]
    cmd += ["--family", args.family, "--max-pairs", str(args.max_pairs)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not found:
        raise SystemExit(f"variant {name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(found[-1][len("RESULT ") :])


def merge_rounds(runs: list[dict]) -> dict:
    """One row per variant: step times pooled over the rounds; counts and memory from the rounds' worst."""
    seconds = [s for r in runs for s in r["step_seconds"]]
    merged = dict(runs[0])
    merged.update(
        rounds=len(runs),
        measured_steps=len(seconds),
        seconds_per_step=statistics.mean(seconds),
        seconds_per_step_median=statistics.median(seconds),
        seconds_per_step_stdev=statistics.stdev(seconds) if len(seconds) > 1 else 0.0,
        pairs_per_s=runs[0]["pairs_per_step"] / statistics.median(seconds),
        warmup_seconds_per_step=statistics.mean(r["warmup_seconds_per_step"] for r in runs),
        peak_rss_mib=max(r["peak_rss_mib"] for r in runs),
        step_seconds=seconds,
    )
    return merged


def table(rows: list[dict], dpo: dict) -> str:
    head = (
        "| variant | s/step (median) | mean ± sd | pairs/s | × DPO | UNet rows/pair (grad + no-grad) | UNet calls/step "
        "| fill-epoch s/step | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['seconds_per_step_median']:.4f} | {r['seconds_per_step']:.4f} ± "
            f"{r['seconds_per_step_stdev']:.4f} | {r['pairs_per_s']:.1f} "
            f"| {r['seconds_per_step_median'] / dpo['seconds_per_step_median']:.2f} "
            f"| {r['unet_rows_per_pair']:.2f} ({r['unet_rows_per_pair_grad']:.0f} + "
            f"{r['unet_rows_per_pair_no_grad']:.2f}) | {r['unet_calls_per_step']:.1f} "
            f"| {r['warmup_seconds_per_step']:.4f} | {r['peak_rss_mib']:.0f} |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolution", type=int, default=32, help="image side (tiny VAE: latents side / 2)")
    parser.add_argument("--pairs-per-device", type=int, default=4)
    parser.add_argument("--rows", type=int, default=40, help="pairs in the fixture before ties/corrupt rows")
    parser.add_argument("--measure-steps", type=int, default=0, help="0: one whole epoch after the warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--family", default="sd15", choices=list(FAMILY_SETUPS))
    parser.add_argument("--variants", nargs="*", default=None, choices=list(VARIANTS), help="default: the family's")
    parser.add_argument("--root", default=None, help="working folder (default: a temp dir)")
    parser.add_argument("--out", default=None, help="results path without suffix (default: train_cost[_family])")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--max-pairs", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant, interleaved")
    args = parser.parse_args()

    if args.worker:
        print("RESULT " + json.dumps(run_variant(args)), flush=True)
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    description, family_variants = FAMILY_SETUPS[args.family]
    args.variants = args.variants or family_variants
    args.out = args.out or str(RESULTS / ("train_cost" if args.family == "sd15" else f"train_cost_{args.family}"))
    runs: dict[str, list[dict]] = {name: [] for name in args.variants}
    with tempfile.TemporaryDirectory(prefix="train-cost-") as tmp:
        root = Path(args.root or tmp)
        build_world(root, args.rows, args.family, args.resolution)
        args.max_pairs = prepare_whole_batches(args, root)
        for round_index in range(args.rounds):  # round-robin: drifting load on a shared machine hits all
            for name in args.variants:
                runs[name].append(run_once(args, root, name, round_index))
                r = runs[name][-1]
                print(f"round {round_index} {name:28s} {r['seconds_per_step_median']:.4f} s/step", flush=True)
        rows = [merge_rounds(runs[name]) for name in args.variants]

    import torch

    dpo = next((r for r in rows if r["variant"] == "dpo"), rows[0])
    for r in rows:
        r["ratio_to_dpo"] = r["seconds_per_step_median"] / dpo["seconds_per_step_median"]
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads_per_run": args.threads,
    }
    setup = {
        "model": description,
        "resolution": args.resolution,
        "pairs_per_device": args.pairs_per_device,
        "fixture_rows": args.rows,
        "pairs": args.max_pairs,
        "rounds": args.rounds,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine, "setup": setup, "results": rows}
    tmp_json = out.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp_json, out.with_suffix(".json"))
    md = (
        f"# Training step cost\n\n{setup['model']}, images {args.resolution}², {args.pairs_per_device} pairs per step, "
        f"{args.threads} torch thread(s); {machine['platform']}, {machine['cpu_count']} CPUs"
        f"{', ' + machine['cuda'] if machine['cuda'] else ''}, load average at end {machine['load_average_at_end']}.\n"
        f"{args.max_pairs} pairs; {args.rounds} interleaved runs per variant; warm-up epoch excluded (it fills the inversion cache; its cost is the "
        "fill-epoch column); × DPO on medians (the machine is shared).\n\n" + table(rows, dpo)
    )
    tmp_md = out.with_suffix(".md.tmp")
    tmp_md.write_text(md)
    os.replace(tmp_md, out.with_suffix(".md"))
    print()
    print(md)


if __name__ == "__main__":
    main()
