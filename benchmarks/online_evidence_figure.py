"""The online-evidence picture of one world: every arm against the base, the two head-to-heads, and
each training seed's rounds (labeller vs held-out guard win-rate), all with what the payload holds.

    .venv/bin/python -m benchmarks.online_evidence_figure --world toy-mixed   # from the committed JSON
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import harness


def _intervals(ax: Any, rows: dict[str, dict[str, Any]], title: str) -> None:
    names = list(rows)
    win = [rows[n]["win_rate"] for n in names]
    err = [
        [w - rows[n]["win_low"] for w, n in zip(win, names)],
        [rows[n]["win_high"] - w for w, n in zip(win, names)],
    ]
    ax.errorbar(range(len(names)), win, yerr=err, fmt="o", capsize=4)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set(xticks=range(len(names)), xlim=(-0.6, len(names) - 0.4), ylim=(0.0, 1.0), title=title)
    ax.set_ylabel("win-rate, 95% interval")
    ax.set_xticklabels([n.replace(" vs ", "\nvs ") for n in names], fontsize=8)


def write_figure(payload: dict[str, Any], path: Path) -> Path:
    """A 3-panel PNG of ``payload`` (a :mod:`benchmarks.online_evidence` result) at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inpo.io import atomic_file

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    _intervals(axes[0], payload["results"], "against the base")
    _intervals(axes[1], payload["head_to_head"], "head to head")
    for i, (seed, rounds) in enumerate(payload["rounds"].items()):
        ks = [r["round"] for r in rounds]
        colour = f"C{i}"
        axes[2].plot(
            ks, [r["labeller_win_rate"] for r in rounds], "o-", color=colour, label=f"seed {seed} labeller"
        )
        axes[2].plot(
            ks, [r["guard_win_rate"] for r in rounds], "s--", color=colour, label=f"seed {seed} guard"
        )
    axes[2].axhline(0.5, color="grey", lw=0.8, ls="--")
    rounds = sorted({r["round"] for seed in payload["rounds"].values() for r in seed})
    axes[2].set(xlabel="round", xticks=rounds, ylim=(0.0, 1.0), title="online rounds vs the base (own evaluation)")
    axes[2].legend(fontsize=7, ncol=2)
    p = payload["protocol"]
    fig.suptitle(
        f"world {payload['world']}: {p['steps']} steps per arm (online {p['rounds']} rounds), seeds {p['train_seeds']}, "
        f"DDIM {p['sample_steps']} steps, guidance {p['guidance']}",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world", default="toy-mixed", choices=["toy", "toy-mixed"])
    args = parser.parse_args(argv)
    stem = harness.RESULTS / f"online_evidence_{args.world.replace('-', '_')}"
    out = write_figure(json.loads(stem.with_suffix(".json").read_text()), stem.with_suffix(".png"))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
