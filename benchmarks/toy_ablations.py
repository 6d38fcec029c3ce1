"""Ablations of InPO in the toy world (one training seed, ≤ 100 steps), beside Diffusion-DPO.

    .venv/bin/python -m benchmarks.toy_ablations

1. Inversion quality, no training: held-out-free winner images of the pairs, DDIM-inverted by the base
   to t ∈ {100, 300, 500, 700, 900} (eta 0) for each (mode, steps): the std of InPO's target
   ``eps_hat`` (1 for a latent at the right noise level), the base's own error on that target
   (``err_ref`` of the InPO loss) against the same error on DPO's (random noise) target, and the
   reconstruction error of DDIM-denoising ``x_t`` back to 0 (MSE / image variance).
2. Training runs, evaluated as in benchmarks.toy_alignment (win-rate / mean gain vs the base, 95% bootstrap
   over items, guard metrics): inversion steps 3/5/10/30 (corrected, policy, eta 0.1); reference
   inversion; the cached reference inversion (eta 0); faithful; and a β / learning-rate sweep for
   DPO and InPO-corrected.

Results: ``benchmarks/results/toy_ablations.{json,md}``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import alignment_report as report
from . import harness

INV = harness.INV
CACHED = [f"{INV}.model=reference", f"{INV}.eta=0", f"{INV}.cache=true"]

# name → (method, overrides); every run starts from train.learning_rate=3e-6, β 5000 unless set here
RUNS: dict[str, tuple[str, list[str]]] = {
    "dpo": ("dpo", []),
    "inpo-corrected-3": ("inpo", [f"{INV}.steps=3"]),
    "inpo-corrected-10": ("inpo", [f"{INV}.steps=10"]),
    "inpo-corrected-30": ("inpo", [f"{INV}.steps=30"]),
    "inpo-corrected-10-reference": ("inpo", [f"{INV}.model=reference"]),
    "inpo-corrected-10-cached": ("inpo", CACHED),
    "inpo-faithful-10-cached": ("inpo", [f"{INV}.mode=faithful", *CACHED]),
    "dpo-beta1000": ("dpo", ["method.dpo.beta=1000"]),
    "inpo-corrected-10-beta1000": ("inpo", ["method.inpo.beta=1000"]),
    "dpo-beta20000": ("dpo", ["method.dpo.beta=20000"]),
    "inpo-corrected-10-beta20000": ("inpo", ["method.inpo.beta=20000"]),
    "dpo-lr1e-5": ("dpo", ["train.learning_rate=1e-5"]),
    "inpo-corrected-10-lr1e-5": ("inpo", ["train.learning_rate=1e-5"]),
}

INVERSIONS = [("corrected", 3), ("corrected", 5), ("corrected", 10), ("corrected", 30), ("faithful", 10)]
TIMESTEPS = [100, 300, 500, 700, 900]


# ----------------------------------------------------------------------------- inversion quality


def winner_images(cfg: Any, n: int) -> tuple[torch.Tensor, list[str]]:
    """The first ``n`` decodable non-tie winners of the pair shard → [n, 3, H, W] in [-1, 1], captions."""
    import pyarrow.parquet as pq
    from PIL import Image

    from inpo import layout
    from inpo.toyworld.pairs import SHARD_NAME

    harness.ensure_pairs(cfg)
    images, captions = [], []
    for row in pq.read_table(layout.world_pairs_dir(cfg) / SHARD_NAME).to_pylist():
        if row["label_0"] == 0.5:
            continue
        try:
            img = Image.open(io.BytesIO(row["jpg_0" if row["label_0"] == 1 else "jpg_1"])).convert("RGB")
        except OSError:
            continue
        images.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1))
        captions.append(row["caption"])
        if len(images) == n:
            break
    return torch.stack(images), captions


def ddim_reconstruct(x_t: torch.Tensor, level: torch.Tensor, eps_fn: Any, abar: torch.Tensor, steps: int):
    """Deterministic DDIM from ``x_t`` at per-image ``level`` [B] down to 0 in ``steps`` steps → x0 [B, ...]."""
    x = x_t.clone()
    fractions = torch.linspace(1, 0, steps + 1)
    x0_pred = x
    for k in range(steps):
        s = (level.float() * fractions[k]).round().long()
        s2 = (level.float() * fractions[k + 1]).round().long()
        eps = eps_fn(x, s)
        a_s, a_s2 = abar[s].view(-1, 1, 1, 1), abar[s2].view(-1, 1, 1, 1)
        x0_pred = (x - (1 - a_s).sqrt() * eps) / a_s.sqrt()
        x = a_s2.sqrt() * x0_pred + (1 - a_s2).sqrt() * eps
    return x0_pred


@torch.no_grad()
def inversion_quality(cfg: Any, n_images: int = 64) -> list[dict[str, Any]]:
    from inpo import inversion
    from inpo.models import encode_images, encode_prompts, load_components, unet_eps
    from inpo.parametrisation import EPSILON

    noised = EPSILON.noised

    components = load_components(cfg.model)
    unet = components.unet.eval()
    abar = components.alphas_cumprod.float()
    images, captions = winner_images(cfg, n_images)
    x0 = encode_images(components, images)
    cond = encode_prompts(components, captions, resolution=cfg.data.resolution)

    def eps_rows(x: torch.Tensor, ts: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return unet_eps(unet, x, ts, cond.select(rows)).float()

    def eps_all(x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        return eps_rows(x, ts, torch.arange(len(x)))

    variance = float(x0.var())
    gen = torch.Generator().manual_seed(0)
    out = []
    for t_value in TIMESTEPS:
        t = torch.full((len(x0),), t_value, dtype=torch.long)
        noise = torch.randn(x0.shape, generator=gen)
        dpo_err = float((eps_all(noised(x0, noise, t, abar), t) - noise).pow(2).mean())
        for mode, steps in INVERSIONS:
            res = inversion.invert(x0, t, eps_rows, abar, mode=mode, steps=steps, eta=0.0)  # type: ignore[arg-type]
            level = res.landing_level.long().clamp(max=len(abar) - 1)
            ref_err = float((eps_all(res.x_t, t) - res.eps_hat).pow(2).mean())
            rec = ddim_reconstruct(res.x_t, level, eps_all, abar, steps)
            out.append(
                {
                    "t": t_value,
                    "mode": mode,
                    "steps": steps,
                    "eps_hat_std": float(res.eps_hat.std()),
                    "err_ref_inpo": ref_err,
                    "err_ref_dpo": dpo_err,
                    "recon_mse_over_var": float((rec - x0).pow(2).mean()) / variance,
                    "calls": res.n_model_calls,
                }
            )
    return out


def pair_images(cfg: Any, n: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The first ``n`` decodable non-tie pairs → winners, losers [n, 3, H, W] in [-1, 1], captions."""
    import pyarrow.parquet as pq
    from PIL import Image

    from inpo import layout
    from inpo.toyworld.pairs import SHARD_NAME

    def load(data: bytes) -> torch.Tensor:
        img = Image.open(io.BytesIO(data)).convert("RGB")
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)

    winners, losers, captions = [], [], []
    for row in pq.read_table(layout.world_pairs_dir(cfg) / SHARD_NAME).to_pylist():
        if row["label_0"] == 0.5:
            continue
        try:
            a, b = load(row["jpg_0"]), load(row["jpg_1"])
        except OSError:
            continue
        winners.append(a if row["label_0"] == 1 else b)
        losers.append(b if row["label_0"] == 1 else a)
        captions.append(row["caption"])
        if len(winners) == n:
            break
    return torch.stack(winners), torch.stack(losers), captions


@torch.no_grad()
def cross_margins(cfg: Any, policies: dict[str, Path], n_pairs: int = 256, beta: float = 5000.0):
    """Each trained policy's implicit preference margin z under both objectives, against the base.

    Same pairs, same t (uniform, seeded) and noise for every policy; InPO's x_t and target from the
    base's corrected 10-step eta-0 inversion (the cached mode's walk). Returns, per policy, mean z and
    the share of pairs with z > 0 under DPO's and InPO's objective: does each objective reward what
    the other learned?
    """
    from inpo import inversion, losses
    from inpo.models import encode_images, encode_prompts, load_components, load_unet_weights, unet_eps
    from inpo.parametrisation import EPSILON

    noised = EPSILON.noised

    base = load_components(cfg.model)
    abar = base.alphas_cumprod.float()
    x_w, x_l, captions = pair_images(cfg, n_pairs)
    x0 = torch.cat([encode_images(base, x_w), encode_images(base, x_l)])
    cond = encode_prompts(base, captions + captions, resolution=cfg.data.resolution)
    gen = torch.Generator().manual_seed(0)
    t = torch.randint(0, 1000, (n_pairs,), generator=gen).repeat(2)
    noise = torch.randn(x0[:n_pairs].shape, generator=gen).repeat(2, 1, 1, 1)
    x_dpo = noised(x0, noise, t, abar)

    def eps_of(unet: torch.nn.Module):
        return lambda x, ts, rows: unet_eps(unet, x, ts, cond.select(rows)).float()

    ref = eps_of(base.unet.eval())
    inv = inversion.invert(x0, t, ref, abar, mode="corrected", steps=10, eta=0.0)
    rows = torch.arange(2 * n_pairs)
    targets = {"dpo": (x_dpo, noise), "inpo": (inv.x_t, inv.eps_hat)}
    err_ref = {k: losses.per_image_mse(ref(x, t, rows), y) for k, (x, y) in targets.items()}
    out = {}
    for name, path in policies.items():
        policy = load_components(cfg.model).unet.eval()
        load_unet_weights(policy, path, False)
        pol = eps_of(policy)
        row = {}
        for k, (x, y) in targets.items():
            e_pol = losses.per_image_mse(pol(x, t, rows), y)
            e_ref = err_ref[k]
            z = losses.preference_logits(
                e_pol[:n_pairs], e_ref[:n_pairs], e_pol[n_pairs:], e_ref[n_pairs:], beta
            )
            row[f"z_{k}_mean"] = float(z.mean())
            row[f"z_{k}_positive"] = float((z > 0).float().mean())
        out[name] = row
    return out


# -------------------------------------------------------------------------------------- training


def run_ablations(args: argparse.Namespace) -> dict[str, Any]:
    from inpo.models import load_components

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="toy_ablations_"))
    cfg = harness.make_config(work)
    quality = inversion_quality(cfg) if not args.skip_quality else []
    print(f"inversion quality: {time.perf_counter() - started:.0f}s", flush=True)
    if quality:
        harness.write_atomic(Path(args.results) / "toy_ablations_quality.json", json.dumps(quality, indent=1))
    items = harness.eval_items(cfg, None, args.eval_seeds, args.sample_steps)
    components = load_components(cfg.model)
    base = harness.evaluate(components, components.unet, items, cfg.data.resolution)
    del components
    counter = harness.ForwardCounter()
    runs = []
    for name in args.runs:
        method, overrides = RUNS[name]
        t0 = time.perf_counter()
        runs.append(
            harness.train_and_evaluate(
                work, name, method, overrides, args.seed, args.eval_steps, items, counter
            )
        )
        print(f"[{name}] {time.perf_counter() - t0:.0f}s", flush=True)
        write(args, quality, items, base, runs, started)
    unets = {r.name: work / "runs" / f"{r.name}-s{r.seed}" / "out" / "unet" for r in runs}
    margins = cross_margins(cfg, {k: v for k, v in unets.items() if v.exists()})
    payload = write(args, quality, items, base, runs, started, margins)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return payload


def write(
    args: argparse.Namespace,
    quality: list[dict[str, Any]],
    items: harness.EvalItems,
    base: dict[str, Any],
    runs: list[harness.RunRecord],
    started: float,
    margins: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Summarise the runs so far and write the JSON and markdown (after every run: partial results)."""
    summary = report.summarize(base, runs, items, args.bootstrap)
    payload = {
        "setup": {
            "seed": args.seed,
            "eval_steps": args.eval_steps,
            "n_items": len(items.prompts),
            "sample_steps": args.sample_steps,
            "defaults": "lr 3e-6, beta 5000, batch 16, inversion corrected/10 steps/policy/eta 0.1",
            "runs": {name: RUNS[name] for name in args.runs},
        },
        "base": {k: base[k] for k in ("oracle_mean", "accuracy", "diversity")},
        "inversion_quality": quality,
        "cross_margins": margins or {},
        "summary": summary,
        "wall_seconds": time.perf_counter() - started,
    }
    out = Path(args.results)
    harness.write_atomic(out / "toy_ablations.json", json.dumps(payload, indent=1))
    harness.write_atomic(out / "toy_ablations.md", markdown(payload))
    return payload


def markdown(payload: dict[str, Any]) -> str:
    setup = payload["setup"]
    lines = [
        "# Toy-world ablations",
        "",
        f"Training seed {setup['seed']}; {setup['n_items']} held-out items, DDIM {setup['sample_steps']} steps; "
        f"defaults: {setup['defaults']}. Wall {payload['wall_seconds']:.0f} s (shared 2-CPU machine).",
        "",
    ]
    if payload["inversion_quality"]:
        lines += [
            "## Inversion quality (base model, 64 winner images, eta 0)",
            "",
            "| t | mode | steps | calls | std(eps_hat) | base err on InPO target | base err on DPO target | "
            "recon MSE / var |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for q in payload["inversion_quality"]:
            lines.append(
                f"| {q['t']} | {q['mode']} | {q['steps']} | {q['calls']} | {q['eps_hat_std']:.3f} | "
                f"{q['err_ref_inpo']:.4f} | {q['err_ref_dpo']:.4f} | {q['recon_mse_over_var']:.4f} |"
            )
    if payload.get("cross_margins"):
        lines += [
            "",
            "## Each trained policy's implicit margin z under both objectives (256 training pairs, β 5000)",
            "",
            "| policy | mean z (DPO target) | z > 0 (DPO) | mean z (InPO target) | z > 0 (InPO) |",
            "|---|---|---|---|---|",
        ]
        for name, z in payload["cross_margins"].items():
            lines.append(
                f"| {name} | {z['z_dpo_mean']:.3f} | {z['z_dpo_positive']:.3f} | {z['z_inpo_mean']:.3f} | "
                f"{z['z_inpo_positive']:.3f} |"
            )
    lines += [
        "",
        "## Training runs (win-rate / mean oracle gain vs the base, 95% bootstrap over items)",
        "",
        "| run | step | train s | fwd rows | win-rate | mean gain | beats | accuracy | diversity |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in payload["summary"].items():
        for step, v in m["steps"].items():
            p = v["pooled"]
            lines.append(
                f"| {name} | {step} | {p['seconds']:.1f} | {p['forward_rows']:.0f} | "
                f"{harness.fmt_ci(p['win_rate'], p['win_low'], p['win_high'])} | "
                f"{harness.fmt_ci(p['mean_gain'], p['gain_low'], p['gain_high'], 4)} | "
                f"{'yes' if p['beats'] else 'no'} | {p['accuracy']:.3f} | {p['diversity']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-steps", nargs="+", type=int, default=[50, 100])
    p.add_argument("--eval-seeds", type=int, default=16)
    p.add_argument("--sample-steps", type=int, default=10)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--work", default=None)
    p.add_argument("--results", default=str(harness.RESULTS))
    args = p.parse_args(argv)
    if max(args.eval_steps) > 100:
        p.error("the ablations' budget is at most 100 steps")
    return args


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run_ablations(parse_args())
