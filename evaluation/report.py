"""The evaluation report: paper-style tables, charts, an image grid, as Markdown and self-contained HTML.

    paths = build_report(table, meta, out_dir, eval_cfg, manifest=manifest, images_root=generate_dir)

Everything is recomputed from the per-image score table (so the report and ``metrics.json`` agree).
Per prompt set: median scores of every model (HPDv2 also per style), win-rate of each model over
the baseline with its bootstrap interval, and the mean gain with its interval. HPS and CLIP are
stored as cosines and shown ×100 (:func:`display_scale`). Charts (matplotlib, Agg) and grids go to
``charts/``; the HTML embeds them (base64), the Markdown links them.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from evaluation.compare import summarize_scores
from evaluation.report_charts import plot_distributions, plot_image_grid, plot_winrates
from evaluation.report_names import PER_CATEGORY_SETS, display_name, display_scale, safe_name

if TYPE_CHECKING:
    from inpo.config.sections import EvalConfig

# ----------------------------------------------------------------------------------- document blocks


@dataclass(frozen=True)
class Table:
    caption: str
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    path: Path  # a PNG inside the report folder
    caption: str


Block = tuple[str, str] | Table | Figure  # ("h1" | "h2" | "h3" | "p" | "pre", text)


def render_markdown(blocks: Sequence[Block], root: Path) -> str:
    out = []
    for block in blocks:
        if isinstance(block, Table):
            out.append(f"**{block.caption}**\n")
            out.append("| " + " | ".join(block.header) + " |")
            out.append("|" + "|".join(["---"] * len(block.header)) + "|")
            out += ["| " + " | ".join(row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Figure):
            out.append(
                f"![{block.caption}]({block.path.relative_to(root).as_posix()})\n\n*{block.caption}*\n"
            )
        else:
            kind, text = block
            prefix = {"h1": "# ", "h2": "## ", "h3": "### "}.get(kind)
            out.append(
                f"```\n{text}\n```\n" if kind == "pre" else f"{prefix}{text}\n" if prefix else f"{text}\n"
            )
    return "\n".join(out)


HTML_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}caption{font-weight:600;text-align:left;padding:.3em 0}
img{max-width:100%}figcaption{font-style:italic;color:#555}pre{background:#f6f6f6;padding:.6em;overflow:auto}"""


def render_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained page: figures embedded as base64 PNG."""
    esc = html.escape
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
        f"<style>{HTML_STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Table):
            out.append(f"<table><caption>{esc(block.caption)}</caption><tr>")
            out.append("".join(f"<th>{esc(h)}</th>" for h in block.header) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block.rows]
            out.append("</table>")
        elif isinstance(block, Figure):
            data = base64.b64encode(block.path.read_bytes()).decode()
            out.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{esc(block.caption)}'>"
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
        else:
            kind, text = block
            out.append(f"<pre>{esc(text)}</pre>" if kind == "pre" else f"<{kind}>{esc(text)}</{kind}>")
    out.append("</body></html>")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------- tables


def _fmt(value: float, metric: str, digits: int = 3) -> str:
    return f"{value * display_scale(metric):.{digits}f}"


def median_table(
    summary: pd.DataFrame, prompt_set: str, models: Sequence[str], metrics: Sequence[str]
) -> Table:
    """Rows: models; columns: metrics; cells: median (display scale)."""
    rows = summary[summary["prompt_set"] == prompt_set].set_index(["model", "metric"])
    body = []
    for model in models:
        cells = [
            _fmt(rows.loc[(model, m), "median"], m) if (model, m) in rows.index else "–" for m in metrics
        ]
        body.append([model, *cells])
    n = int(rows["n"].max()) if len(rows) else 0
    return Table(
        f"{prompt_set}: median score per image ({n} images per model)",
        ["model", *[display_name(m) for m in metrics]],
        body,
    )


def category_table(summary: pd.DataFrame, prompt_set: str, models: Sequence[str], metric: str) -> Table:
    """Rows: models; columns: categories (HPDv2 styles); cells: median of ``metric``."""
    rows = summary[(summary["prompt_set"] == prompt_set) & (summary["metric"] == metric)]
    cats = sorted(set(rows["category"]))
    by = rows.set_index(["model", "category"])["median"]
    body = [[m, *[_fmt(by[(m, c)], metric) if (m, c) in by.index else "–" for c in cats]] for m in models]
    return Table(f"{prompt_set}: median {display_name(metric)} per category", ["model", *cats], body)


def _model_metric_table(
    compared: pd.DataFrame,
    prompt_set: str,
    models: Sequence[str],
    metrics: Sequence[str],
    caption: str,
    cell: Callable[[Any, str], str],
) -> Table:
    """Rows: ``models``; columns: ``metrics``; cell ``cell(row, metric)`` of the comparison row, "–" if none."""
    rows = compared[compared["prompt_set"] == prompt_set].set_index(["model", "metric"])
    body = [
        [model, *[cell(rows.loc[(model, m)], m) if (model, m) in rows.index else "–" for m in metrics]]
        for model in models
    ]
    return Table(caption, ["model", *[display_name(m) for m in metrics]], body)


def winrate_table(
    compared: pd.DataFrame,
    prompt_set: str,
    models: Sequence[str],
    metrics: Sequence[str],
    baseline: str,
    confidence: float,
) -> Table:
    """Rows: non-baseline models; cells: win-rate % [interval] over the baseline, ``*`` where it beats it."""

    def cell(r: Any, metric: str) -> str:
        star = "*" if bool(r["beats"]) else ""
        return f"{100 * r['win_rate']:.1f} [{100 * r['win_low']:.1f}, {100 * r['win_high']:.1f}]{star}"

    caption = (
        f"{prompt_set}: win-rate over {baseline} in % (ties ½) [{100 * confidence:.0f}% paired bootstrap "
        "interval]; * = win-rate and mean-gain intervals both above chance"
    )
    return _model_metric_table(compared, prompt_set, models, metrics, caption, cell)


def gain_table(
    compared: pd.DataFrame,
    prompt_set: str,
    models: Sequence[str],
    metrics: Sequence[str],
    baseline: str,
    confidence: float,
) -> Table:
    """Rows: non-baseline models; cells: mean paired gain over the baseline [interval], display units."""

    def cell(r: Any, metric: str) -> str:
        k = display_scale(metric)
        return f"{k * r['mean_gain']:+.3g} [{k * r['gain_low']:+.3g}, {k * r['gain_high']:+.3g}]"

    caption = f"{prompt_set}: mean paired gain over {baseline} [{100 * confidence:.0f}% interval]"
    return _model_metric_table(compared, prompt_set, models, metrics, caption, cell)


def winrates_json(compared: pd.DataFrame) -> dict[str, Any]:
    """``{model: {prompt_set: {metric: {win_rate, win_low, win_high, mean_gain, gain_low, gain_high,
    beats, n_items, n_prompts}}}}`` (raw units)."""
    out: dict[str, Any] = {}
    keys = ("win_rate", "win_low", "win_high", "mean_gain", "gain_low", "gain_high")
    for r in compared.itertuples(index=False):
        entry = {k: float(getattr(r, k)) for k in keys}
        entry.update(beats=bool(r.beats), n_items=int(r.n_items), n_prompts=int(r.n_prompts))
        out.setdefault(str(r.model), {}).setdefault(str(r.prompt_set), {})[str(r.metric)] = entry
    return out


def read_winrates(path: str | Path) -> dict[str, Any]:
    """``winrates.json`` as :func:`winrates_json` made it (``build_report`` writes it)."""
    import json

    data = json.loads(Path(path).read_text())
    shape_ok = isinstance(data, dict) and all(
        isinstance(sets, dict) and all(isinstance(m, dict) for m in sets.values()) for sets in data.values()
    )
    if not shape_ok:
        raise ValueError(f"{path}: expected {{model: {{prompt_set: {{metric: {{win_rate, ...}}}}}}}}")
    return data


# ----------------------------------------------------------------------------------------- the report


def ordered(values: Sequence[str], first: Sequence[str]) -> list[str]:
    """``values`` with those in ``first`` first (in that order), the rest in their own order."""
    head = [v for v in dict.fromkeys(first) if v in values]
    return head + [v for v in dict.fromkeys(values) if v not in head]


def scorer_lines(infos: dict[str, Any]) -> list[list[str]]:
    """Rows of the scorer table: metric, kind, weights loaded."""
    rows = []
    for metric, info in infos.items():
        kind = "programmatic (exact)" if info.get("kind") == "programmatic" else "learned (weights below)"
        weights = {
            k: v
            for k, v in info.items()
            if k not in ("metric", "formula", "stored", "preprocess", "kind", "range", "dtype", "name")
        }
        rows.append([metric, kind, "; ".join(f"{k}={v}" for k, v in weights.items()) or "–"])
    return rows


def build_report(
    table: pd.DataFrame,
    meta: dict[str, Any],
    out_dir: str | Path,
    eval_cfg: EvalConfig,
    manifest: pd.DataFrame | None = None,
    images_root: str | Path | None = None,
    grid_prompts: int = 8,
    grid_seeds: int = 4,
    title: str = "inpo evaluation report",
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``winrates.json`` and ``charts/*.png`` into ``out_dir``."""
    from evaluation.score import comparison
    from inpo.io import write_json_atomic, write_text_atomic

    out = Path(out_dir)
    charts = out / "charts"
    baseline = eval_cfg.baseline
    models = ordered(list(table["model"]), [baseline, *meta.get("models", [])])
    others = [m for m in models if m != baseline]
    infos: dict[str, Any] = meta.get("scorers", {})
    summary = summarize_scores(table)
    compared = comparison(table, eval_cfg)
    blocks: list[Block] = [("h1", title)]
    blocks.append(
        (
            "p",
            f"Models: {', '.join(models)}; baseline: {baseline}. Every model generated the same prompts "
            f"with the same seeds (the same initial noise). Win-rates resample prompts with all their "
            f"seeds ({eval_cfg.bootstrap_unit} bootstrap, {eval_cfg.bootstrap_samples} samples).",
        )
    )
    blocks.append(
        Table(
            "Scorers and the weights they loaded (learned scorers are results only with the "
            "published weights)",
            ["metric", "kind", "loaded"],
            scorer_lines(infos),
        )
    )
    for prompt_set in ordered(list(table["prompt_set"]), []):
        metrics = ordered(list(table[table["prompt_set"] == prompt_set]["metric"]), list(infos))
        blocks.append(("h2", f"Prompt set: {prompt_set}"))
        blocks.append(median_table(summary, prompt_set, models, metrics))
        if prompt_set in PER_CATEGORY_SETS:
            by_cat = summarize_scores(table, by_category=True)
            blocks += [category_table(by_cat, prompt_set, models, m) for m in metrics]
        if others:
            blocks.append(winrate_table(compared, prompt_set, others, metrics, baseline, eval_cfg.confidence))
            blocks.append(gain_table(compared, prompt_set, others, metrics, baseline, eval_cfg.confidence))
            path = plot_winrates(
                compared,
                prompt_set,
                others,
                metrics,
                baseline,
                charts / f"winrates_{safe_name(prompt_set)}.png",
            )
            blocks.append(Figure(path, f"{prompt_set}: win-rate over {baseline} with intervals"))
        guards = {m: meta.get("guards", {}).get(m, {}).get(prompt_set, {}) for m in models}
        if any(guards.values()):
            names = sorted({k for g in guards.values() for k in g})
            rows = [[m, *[f"{guards[m][k]:.4f}" if k in guards[m] else "–" for k in names]] for m in models]
            blocks.append(
                Table(
                    f"{prompt_set}: guard metrics training never sees (diversity: mean RMS distance "
                    "between images of the same prompt; 0 = collapse)",
                    ["model", *names],
                    rows,
                )
            )
        path = plot_distributions(
            table, prompt_set, models, metrics, charts / f"scores_{safe_name(prompt_set)}.png"
        )
        blocks.append(Figure(path, f"{prompt_set}: per-image score distributions"))
        if manifest is not None and images_root is not None:
            path = plot_image_grid(
                manifest,
                Path(images_root),
                prompt_set,
                models,
                charts / f"grid_{safe_name(prompt_set)}.png",
                grid_prompts,
                grid_seeds,
            )
            blocks.append(Figure(path, f"{prompt_set}: the same prompts and seeds across models"))
    blocks.append(("h2", "Scorer details"))
    blocks.append(("pre", json.dumps(infos, indent=1, default=str)))
    if meta.get("generation"):
        blocks.append(("h2", "Generation settings"))
        blocks.append(("pre", json.dumps(meta["generation"], indent=1, default=str)))
    paths = {
        "markdown": write_text_atomic(out / "report.md", render_markdown(blocks, out)),
        "html": write_text_atomic(out / "report.html", render_html(blocks, title)),
        "winrates": write_json_atomic(out / "winrates.json", winrates_json(compared)),
    }
    return paths
