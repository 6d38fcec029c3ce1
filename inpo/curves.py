"""Training curves for ``dvc plots``: the loop's ``metrics.jsonl`` as a TSV (DVC reads no JSON Lines).

One row per step, columns = every key seen (first-seen order), empty where a step lacks a key.
"""

from __future__ import annotations

import json
from pathlib import Path

from .io import write_text_atomic


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSON Lines file (blank lines skipped); a bad line names the file and line number."""
    records = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON record: {err}") from None
    return records


def write_curve_tsv(jsonl_path: str | Path, tsv_path: str | Path) -> Path:
    """Write the records of ``jsonl_path`` as a TSV table at ``tsv_path`` (atomically)."""
    records = read_jsonl(jsonl_path) if Path(jsonl_path).exists() else []
    columns: list[str] = []
    for record in records:
        columns.extend(k for k in record if k not in columns)
    lines = ["\t".join(columns)]
    lines += ["\t".join("" if r.get(c) is None else str(r[c]) for c in columns) for r in records]
    return write_text_atomic(tsv_path, "\n".join(lines) + "\n")


def write_curve_png(jsonl_path: str | Path, png_path: str | Path, title: str) -> Path:
    """The loss (and implicit accuracy, when logged) against step as a PNG at ``png_path``
    (atomically): the curve a reader sees without a browser or network (``dvc plots`` needs Vega)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import write_bytes_atomic

    records = read_jsonl(jsonl_path) if Path(jsonl_path).exists() else []
    panels = [k for k in ("loss", "implicit_acc") if any(k in r for r in records)] or ["loss"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.2), squeeze=False)
    for ax, key in zip(axes[0], panels, strict=True):
        points = [(r["step"], r[key]) for r in records if key in r and "step" in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return write_bytes_atomic(png_path, buf.getvalue())
