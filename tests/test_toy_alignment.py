"""The toy-world alignment benchmark's quick mode: the world and the loop show real alignment.

Runs ``python -m benchmarks.toy_alignment --quick --pairs-per-prompt 5`` (one training seed, 40 steps at
lr 1e-5, 12 held-out prompts × 8 seeds; a quarter of world toy's pairs, 540, which take a quarter of
the 2160's sampling time) on the shipped base: every method trains through the real loop with
finite losses, and Diffusion-DPO *beats* the base: the lower bounds of its oracle win-rate interval
(> 0.5) and of its mean-gain interval (> 0), 95% bootstrap over items (evaluation.stats.beats).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks import toy_alignment as ta

# the harness on the arms its accounting asserts read (kto and inpo-faithful train through the same
# loop: tests/test_train_*.py, tests/test_inversion*.py), so the suite stays inside its budget
ARMS_RUN = ["sft", "dpo", "inpo-corrected"]


def test_toy_alignment_quick_dpo_beats_base(tmp_path: Path) -> None:
    args = ta.parse_args(
        [
            "--quick",
            "--pairs-per-prompt",
            "5",
            "--methods",
            *ARMS_RUN,
            "--work",
            str(tmp_path / "work"),
            "--results",
            str(tmp_path / "results"),
        ]
    )
    payload = ta.run_benchmark(args)

    summary = payload["summary"]
    assert list(summary) == ARMS_RUN
    last = str(max(args.eval_steps))
    for name, result in summary.items():
        assert result["finite_losses"], f"{name}: a non-finite loss"
        assert all(math.isfinite(v) for v in result["final_loss"].values()), name
        pooled = result["steps"][last]["pooled"]
        assert 0.0 <= pooled["win_low"] <= pooled["win_rate"] <= pooled["win_high"] <= 1.0, name
        assert pooled["pairs"] == int(last) * 16, name  # steps × 16 pairs per step
    # every item is one (held-out prompt, seed): 12 prompts × 8 seeds
    assert payload["setup"]["n_items"] == 96
    # SFT runs 1 grad forward on B winners per step and no no-grad pass; DPO 2B grad + 2B reference rows.
    sft = summary["sft"]["steps"][last]["seeds"]["0"]
    dpo_seed = summary["dpo"]["steps"][last]["seeds"]["0"]
    assert sft["forward_rows_no_grad"] == 0 and sft["forward_rows_grad"] == int(last) * 16
    assert dpo_seed["forward_rows_grad"] == dpo_seed["forward_rows_no_grad"] == int(last) * 32

    dpo = summary["dpo"]["steps"][last]["pooled"]
    assert dpo["beats"], f"Diffusion-DPO does not beat the base: {dpo}"
    assert dpo["win_low"] > 0.5 and dpo["gain_low"] > 0.0

    written = json.loads((tmp_path / "results" / "toy_alignment_quick_5pp.json").read_text())
    assert written["summary"]["dpo"]["steps"][last]["pooled"]["beats"] is True
    assert (tmp_path / "results" / "toy_alignment_quick_5pp.png").stat().st_size > 0
