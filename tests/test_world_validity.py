"""World toy-mixed's validity check: the manifest's rules, and the quick check itself (SFT and DPO
beat the weak base), which the full protocol check in ``benchmarks/manifests/toy-mixed.json`` records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import harness, world_validity
from inpo.config import DEFAULT_PARAMS, load_config


def _attempt(passed: bool, key: dict) -> dict:
    return {"world": "toy-mixed", "world_key": key, "results": {}, "passed": passed}


def test_the_first_passing_attempt_is_final_and_the_hash_guards_the_manifest(tmp_path: Path):
    path = tmp_path / "toy-mixed.json"
    failed = world_validity.record_attempt(path, _attempt(False, {"v": 1}))
    assert failed["validated"] is None and failed["attempts"][0]["version"] == 1
    passed = world_validity.record_attempt(path, _attempt(True, {"v": 2}))
    assert passed["validated"] == {"version": 2, "world_key": {"v": 2}}
    assert harness.read_manifest(path)["sha256"] == harness.manifest_hash(passed)
    with pytest.raises(SystemExit, match="the first passing version is final"):
        world_validity.record_attempt(path, _attempt(True, {"v": 3}))
    edited = json.loads(path.read_text())
    edited["attempts"][0]["passed"] = True
    path.write_text(json.dumps(edited))
    with pytest.raises(SystemExit, match="does not match its content"):
        harness.read_manifest(path)


def test_inpo_arms_are_refused_without_a_validated_manifest_of_this_world(tmp_path: Path):
    cfg = harness.make_config(tmp_path / "work", world="toy-mixed")
    with pytest.raises(SystemExit, match="has no validity manifest"):
        harness.require_validated_world(cfg, tmp_path)
    world_validity.record_attempt(tmp_path / "toy-mixed.json", _attempt(True, {"another": "world"}))
    with pytest.raises(SystemExit, match="differs from the version its manifest validated"):
        harness.require_validated_world(cfg, tmp_path)
    harness.require_validated_world(
        harness.make_config(tmp_path / "w", world="toy"), tmp_path
    )  # world 1: exempt


def test_the_committed_manifest_validates_the_shipped_world():
    path = harness.MANIFESTS / "toy-mixed.json"
    manifest = harness.read_manifest(path)
    assert manifest["validated"] is not None, "world toy-mixed failed its validity check"
    attempt = manifest["attempts"][manifest["validated"]["version"] - 1]
    assert attempt["passed"] and all(r["beats"] for r in attempt["results"].values())
    assert set(attempt["results"]) == {"sft", "dpo"} and attempt["protocol"]["train_seeds"] == [0, 1, 2]
    cfg = harness.make_config(Path("/nonexistent"), world="toy-mixed")
    harness.require_validated_world(cfg)  # the shipped bases and settings are the validated version
    assert (
        load_config(DEFAULT_PARAMS, ["world=toy-mixed"]).toy.mixed.tie_rate
        == attempt["world_key"]["mixed"]["tie_rate"]
    )


def test_quick_check_sft_and_dpo_beat_the_weak_base(tmp_path: Path):
    attempt = world_validity.main(["--world", "toy-mixed", "--quick", "--work", str(tmp_path)])
    for name in ("sft", "dpo"):
        r = attempt["results"][name]
        assert r["beats"], f"{name} does not beat the weak base: {r}"
        assert r["win_low"] > 0.5 and r["gain_low"] > 0.0
    labels = attempt["pairs"]["labels"]
    assert 0.10 <= labels["tie_rate"] <= 0.14 and 0.70 <= labels["agreement"] <= 0.85
