"""The results table the main job prints: win-rate with its interval per method vs the baseline.

    python -m flows.results [--root DIR] [--params params.yaml]

Reads ``<paths.outputs>/report/winrates.json`` (written by ``inpo report``); when the report has
not run yet, the same numbers from ``<paths.outputs>/score/metrics.json`` (``inpo score``). Medians
come from ``score/metrics.json`` when it exists. Formatting only: no statistics are computed here, and
both files are read by the modules that write them (:mod:`evaluation.report`, :mod:`evaluation.score`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from evaluation.report import read_winrates
from evaluation.score import WIN_STATS, read_flat_metrics, winrates_from_flat_metrics

EVIDENCE = (
    "What the toy worlds show about the methods (3 training seeds, several step counts, intervals): "
    "docs/claims.md and benchmarks/results/toy_alignment.md, toy_mixed_alignment.md"
)
HEADER = (
    "method",
    "prompts",
    "metric",
    "win-rate",
    "interval",
    "mean gain",
    "interval",
    "median",
    "base median",
)


def result_rows(
    winrates: dict[str, Any], medians: dict[str, float], baseline: str, methods: list[str]
) -> list[tuple[str, ...]]:
    """One row per (method, prompt set, metric); methods in config order, then any other model."""
    order = [m for m in methods if m in winrates] + sorted(m for m in winrates if m not in methods)
    rows: list[tuple[str, ...]] = []
    for model in order:
        for prompt_set, by_metric in sorted(winrates[model].items()):
            for metric, w in sorted(by_metric.items()):
                if not all(k in w for k in WIN_STATS):
                    raise ValueError(f"results for {model}/{prompt_set}/{metric} lack one of {WIN_STATS}: {w}")

                def median(name: str, prompt_set: str = prompt_set, metric: str = metric) -> str:
                    value = medians.get(f"{name}/{prompt_set}/{metric}/median")
                    return "–" if value is None else f"{value:.4g}"

                rows.append(
                    (
                        model,
                        prompt_set,
                        metric,
                        f"{100 * w['win_rate']:.1f}%",
                        f"[{100 * w['win_low']:.1f}, {100 * w['win_high']:.1f}]",
                        f"{w['mean_gain']:+.4g}",
                        f"[{w['gain_low']:+.3g}, {w['gain_high']:+.3g}]",
                        median(model),
                        median(baseline),
                    )
                )
    return rows


def format_table(rows: list[tuple[str, ...]], header: tuple[str, ...] = HEADER) -> str:
    """Plain aligned columns (text first, numbers right-aligned)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = 3  # method, prompts, metric

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def results_table(root: str | Path = ".", params: str = "params.yaml") -> str:
    """The table for the workspace ``root`` (paths from its params), with a title naming the source."""
    from inpo import layout
    from inpo.config import load_config

    root = Path(root).resolve()
    cfg = load_config(root / params)

    def at(path: Path) -> Path:
        return path if path.is_absolute() else root / path

    winrates_file = at(layout.winrates_file(cfg))
    metrics_file = at(layout.score_metrics(cfg))
    metrics = read_flat_metrics(metrics_file) if metrics_file.is_file() else {}
    if winrates_file.is_file():
        winrates, source = read_winrates(winrates_file), winrates_file
    elif metrics:
        winrates, source = winrates_from_flat_metrics(metrics, cfg.eval.baseline), metrics_file
    else:
        raise FileNotFoundError(f"no results yet: neither {winrates_file} nor {metrics_file} exists")
    rows = result_rows(winrates, metrics, cfg.eval.baseline, list(cfg.methods))
    if not rows:
        raise ValueError(f"{source} holds no win-rates vs {cfg.eval.baseline!r}")
    title = (
        f"Win-rate of each method over {cfg.eval.baseline!r} ({100 * cfg.eval.confidence:.0f}% paired "
        f"bootstrap intervals over {cfg.eval.bootstrap_unit}s; from {source.relative_to(root)})"
    )
    return f"{title}\n\n{format_table(rows)}\n\n{EVIDENCE}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.results", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the workspace (default: the current folder)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --root")
    parser.add_argument(
        "--tracking-uri",
        action="store_true",
        help="print the MLflow store (tracking.uri, else $MLFLOW_TRACKING_URI) instead",
    )
    args = parser.parse_args(argv)
    if args.tracking_uri:
        from inpo.config import load_config
        from inpo.tracking import tracking_uri

        print(tracking_uri(load_config(Path(args.root) / args.params), args.root))
        return 0
    try:
        print(results_table(args.root, args.params))
    except (FileNotFoundError, ValueError) as err:
        print(f"results: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
