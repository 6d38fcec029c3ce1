"""The claims table's verdict rules and the ablations' paired comparison, on hand-made scores."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.claims import claims, verdict
from benchmarks.claims_ablations import arm_compare, inversion_steps_claim
from benchmarks.harness import EvalItems

ITEMS = EvalItems(["a red circle"] * 4 + ["a blue square"] * 4, list(range(4)) * 2, 10, 7.5)


def _h(win: tuple[float, float], gain: tuple[float, float], a: str = "A", b: str = "B") -> dict:
    return {
        "a": a,
        "b": b,
        "step": "100",
        "win_rate": sum(win) / 2,
        "win_low": win[0],
        "win_high": win[1],
        "mean_gain": sum(gain) / 2,
        "gain_low": gain[0],
        "gain_high": gain[1],
    }


def test_verdict_holds_fails_and_open_follow_both_intervals():
    assert verdict(_h((0.55, 0.7), (0.001, 0.01))) == "holds"
    assert verdict(_h((0.55, 0.7), (-0.001, 0.01))) == "open"  # win-rate alone is not enough
    assert verdict(_h((0.2, 0.45), (-0.01, 0.01))) == "fails"
    assert verdict(_h((0.4, 0.6), (-0.01, -0.001))) == "fails"
    assert verdict(None) == "open"


@pytest.mark.parametrize(
    ("three", "thirty", "expected"),
    [
        (((0.2, 0.4), (-0.02, -0.01)), ((0.4, 0.6), (-0.01, 0.01)), "holds"),  # 10 beats 3, 30 no better
        (((0.2, 0.4), (-0.02, -0.01)), ((0.6, 0.7), (0.01, 0.02)), "fails"),  # 30 beats 10
        (((0.6, 0.7), (0.01, 0.02)), ((0.4, 0.6), (-0.01, 0.01)), "fails"),  # 3 beats 10
        (((0.4, 0.6), (-0.01, 0.01)), ((0.4, 0.6), (-0.01, 0.01)), "open"),  # all tie
    ],
)
def test_ten_inversion_steps_claim_rule(three, thirty, expected):
    h = {
        ("inpo-inv3", "inpo-corrected", 7.5): _h(*three, "inpo-inv3", "inpo-corrected"),
        ("inpo-inv30", "inpo-corrected", 7.5): _h(*thirty, "inpo-inv30", "inpo-corrected"),
    }
    assert inversion_steps_claim(h)["verdict"] == expected
    assert inversion_steps_claim({})["verdict"] == "open"


def _final(scores, step: int = 100) -> dict:
    return {"scores": np.asarray(scores, dtype=np.float64), "cost": {"step": step}}


def test_arm_compare_pairs_only_common_seeds_and_names_unequal_steps():
    better, worse = np.linspace(0.5, 0.6, 8), np.linspace(0.4, 0.5, 8)
    finals = {
        ("sft-inpo", 0): _final(better),
        ("sft-inpo", 1): _final(better),
        ("sft-200", 0): _final(worse, 200),
        ("sft-200", 2): _final(worse, 200),  # seed 2 has no partner: left out
    }
    h = arm_compare(finals, "sft-inpo", "sft-200", ITEMS, 200)
    assert h is not None and h["seeds"] == [0]
    assert h["step"] == "100 vs 200"
    assert h["win_rate"] == 1.0 and h["gain_low"] > 0.09
    assert arm_compare(finals, "sft-inpo", "dpo", ITEMS, 200) is None


def test_claims_take_the_inversion_rows_from_the_ablation_payload():
    ablations = {
        "claims": [
            {"claim": "CFG in inversion hurts", "guidance": 7.5, "verdict": "fails", "evidence": "e75"},
            {"claim": "CFG in inversion hurts", "guidance": 3.0, "verdict": "holds", "evidence": "e3"},
        ]
    }
    rows = {c["claim"]: c for c in claims({"head_to_head": []}, ablations)}
    assert rows["CFG in inversion hurts"]["verdict"] == "fails"  # the protocol's guidance, not 3.0
    assert rows["CFG in inversion hurts"]["evidence"] == "e75"
    assert rows["10 inversion steps balance cost and quality"]["verdict"] == "open"
    assert rows["InPO beats DPO at equal steps (primary endpoint)"]["verdict"] == "open"
