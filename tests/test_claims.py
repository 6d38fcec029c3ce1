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


def test_online_rows_come_from_the_online_evidence_head_to_heads():
    def h(win, low, high, gain_low):
        return {"win_rate": win, "win_low": low, "win_high": high, "mean_gain": 0.0, "gain_low": gain_low, "gain_high": 0.01}

    online = {
        "protocol": {"steps": 99, "rounds": 3, "train_seeds": [0, 1]},
        "offline_pairs": 1896,
        "rounds": {"0": [{"trained_on": 400}, {"trained_on": 390}], "1": [{"trained_on": 410}, {"trained_on": 400}]},
        "head_to_head": {
            "online-inpo vs offline-inpo": h(0.6, 0.55, 0.65, 0.001),
            "offline-smpo vs offline-inpo": h(0.41, 0.36, 0.455, -0.002),
        },
    }
    rows = {c["claim"]: c for c in claims({"head_to_head": []}, None, online)}
    online_row = rows["Online rounds beat offline InPO (the paper's future work)"]
    assert online_row["verdict"] == "holds"
    assert "790–810 distinct pairs, offline on 1896" in online_row["evidence"]
    assert rows["SmPO beats InPO (SmPO, ICML 2025)"]["verdict"] == "fails"  # win-rate high 0.455 < 0.5
    untested = {c["claim"]: c for c in claims({"head_to_head": []})}
    assert untested["SmPO beats InPO (SmPO, ICML 2025)"]["verdict"] == "open"
