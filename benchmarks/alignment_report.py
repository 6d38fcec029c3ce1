"""What a benchmark's runs show: per-arm statistics at each evaluated step, tables and figures.

Per arm and evaluated step: win-rate and mean oracle gain over the base's image of the same item with
95% bootstrap intervals (per training seed, and pooled over seeds with an item's seeds resampled
together), guard metrics and cost (pairs, UNet forward rows, training seconds). An arm *beats* the
base when both lower bounds clear 0.5 and 0 (:func:`evaluation.stats.beats`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .harness import EvalItems, RunRecord, compare, fmt_ci

PLATEAU_FRACTION = 0.9


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


def markdown(payload: dict[str, Any]) -> str:
    s, base = payload["summary"], payload["base"]
    setup = payload["setup"]
    lines = [
        f"# Alignment benchmark, world `{payload.get('world', 'toy')}`",
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
    lines += head_to_head_lines(payload)
    return "\n".join(lines) + "\n"


def head_to_head_lines(payload: dict[str, Any]) -> list[str]:
    """The head-to-head table (primary endpoint first) and the claims table, when the payload has them."""
    if not payload.get("head_to_head"):
        return []
    lines = [
        "",
        "## Head to head (same items and seeds; the first row is the primary endpoint)",
        "",
        "| A | B | step | win-rate of A | mean gain of A |",
        "|---|---|---|---|---|",
    ]
    for h in payload["head_to_head"]:
        lines.append(
            f"| {h['a']} | {h['b']} | {h['step']} | {fmt_ci(h['win_rate'], h['win_low'], h['win_high'])} | "
            f"{fmt_ci(h['mean_gain'], h['gain_low'], h['gain_high'], 4)} |"
        )
    if payload.get("claims"):
        lines += ["", "## The paper's claims here", "", "| claim | verdict | evidence |", "|---|---|---|"]
        lines += [f"| {c['claim']} | {c['verdict']} | {c['evidence']} |" for c in payload["claims"]]
    return lines


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
