"""The rounds at a glance: each round's win-rate against the base, by the labeller(s) and by the
held-out guard, with their 95% intervals (``outputs/online/rounds.png``, written by ``inpo online``).

    series = round_series(summary, "toy", ["oracle"], "oracle_strict", "inpo")   # the plotted numbers
    write_rounds_figure(summary, series, "outputs/online/rounds.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Series:
    """One judge's win-rate per round [R] with its interval bounds [R]."""

    judge: str
    role: str  # "labeller" or "guard"
    win: list[float]
    low: list[float]
    high: list[float]


def round_series(
    summary: dict[str, Any], prompt_set: str, labellers: Sequence[str], guard: str, method: str
) -> list[Series]:
    """The labellers' and the guard's win-rates against the base, round by round."""
    metrics = [r["metrics"][method] for r in summary["rounds"]]
    out = []
    for judge, role in [*((name, "labeller") for name in labellers), (guard, "guard")]:
        key = f"{prompt_set}/{judge}"
        out.append(
            Series(
                judge,
                role,
                [float(m[f"{key}/win_rate"]) for m in metrics],
                [float(m[f"{key}/win_low"]) for m in metrics],
                [float(m[f"{key}/win_high"]) for m in metrics],
            )
        )
    return out


def write_rounds_figure(summary: dict[str, Any], series: Sequence[Series], path: str | Path) -> Path:
    """A PNG of ``series`` over the rounds; diverging rounds are marked, the stopping reason titled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_file

    rounds = [int(r["round"]) for r in summary["rounds"]]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for s in series:
        errors = [[w - lo for w, lo in zip(s.win, s.low)], [hi - w for w, hi in zip(s.win, s.high)]]
        style = "o-" if s.role == "labeller" else "s--"
        ax.errorbar(rounds, s.win, yerr=errors, fmt=style, capsize=3, label=f"{s.judge} ({s.role})")
    for r in summary["rounds"]:
        if r.get("diverging"):
            ax.axvline(int(r["round"]), color="tab:red", alpha=0.3, lw=6)
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set(xlabel="round", ylabel="win-rate vs base", ylim=(0.0, 1.0), xticks=rounds)
    ax.set_title(
        f"stopped: {summary['stopped']}"
        + (" (red: diverging)" if any(r.get("diverging") for r in summary["rounds"]) else ""),
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="lower right")
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
