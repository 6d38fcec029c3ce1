"""Orchestration pieces without servers: overrides, the params writer, stage lists, the lock, retries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.workspace import (
    WorkspaceBusyError,
    is_transient,
    named_overrides,
    pipeline_stages,
    workspace_lock,
    write_params,
)
from inpo.config import DEFAULT_PARAMS, load_config
from inpo.curves import write_curve_tsv
from inpo.tracking import experiment_name, numeric_leaves

ROOT = DEFAULT_PARAMS.parent


def test_named_overrides_map_to_dotted_keys() -> None:
    raw = {"methods": ["inpo", "dpo", "sft"], "method": {"inpo": {"beta": 1}, "dpo": {"beta": 1}, "sft": {}}}
    got = named_overrides(raw, beta=2000.0, inversion_steps=5, max_steps=7)
    # sft has no β, so beta goes to inpo and dpo only
    assert got == [
        "method.inpo.beta=2000.0",
        "method.dpo.beta=2000.0",
        "method.inpo.inversion.steps=5",
        "train.max_steps=7",
    ]
    assert named_overrides(raw, methods=["dpo"], beta=1.5) == ["methods=[dpo]", "method.dpo.beta=1.5"]


def test_dvc_params_writer_round_trips_through_the_config_loader(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    shutil.copy(DEFAULT_PARAMS, params)
    write_params(params, ["method.inpo.beta=2000", "methods=[dpo]"])
    # DVC's writer drops the quotes of mixed_precision: "no"; read as YAML 1.2 it stays the string "no"
    assert "mixed_precision: no\n" in params.read_text()
    cfg = load_config(params)
    assert (cfg.method.inpo.beta, cfg.methods, cfg.train.mixed_precision) == (2000.0, ["dpo"], "no")


def test_pipeline_stages_follow_methods_and_data_source() -> None:
    toy = load_config(DEFAULT_PARAMS)  # data.source is the toy world's pairs
    assert pipeline_stages(toy, ROOT) == [
        "world_pairs",
        "prepare",
        "sft",
        "train@inpo",
        "train@dpo",
        "generate",
        "score",
        "report",
    ]
    own = load_config(DEFAULT_PARAMS, ["data.source=my/pairs", "methods=[kto]"])
    assert pipeline_stages(own, ROOT, until="train") == ["prepare", "sft", "train@kto"]
    with pytest.raises(ValueError, match="until='nope'"):
        pipeline_stages(own, ROOT, until="nope")


def test_second_flow_run_in_a_workspace_is_refused(tmp_path: Path) -> None:
    with workspace_lock(tmp_path, holder="flow run A"):
        with pytest.raises(WorkspaceBusyError, match="flow run A"):
            with workspace_lock(tmp_path, holder="flow run B"):
                pass
    with workspace_lock(tmp_path, holder="flow run C"):  # released after A
        pass


def test_a_second_run_queues_for_the_workspace(tmp_path: Path) -> None:
    import threading
    import time

    said: list[str] = []
    held = threading.Event()

    def first() -> None:
        with workspace_lock(tmp_path, holder="flow run A"):
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(10)
    start = time.monotonic()
    with workspace_lock(tmp_path, holder="flow run B", wait_s=30, log=said.append):
        waited = time.monotonic() - start
    thread.join()
    assert 0.5 < waited < 10 and len(said) == 1 and "flow run A" in said[0] and "queued" in said[0]


def test_a_holder_ending_on_an_exception_leaves_its_record(tmp_path: Path) -> None:
    """SIGTERM (or any exception) may end a flow after its server is gone, so its final state never
    reaches the API: the next holder gets the record and checks; a clean end leaves none."""
    with pytest.raises(KeyboardInterrupt):
        with workspace_lock(tmp_path, holder="flow run A", flow_run_id="a-id"):
            raise KeyboardInterrupt
    with workspace_lock(tmp_path, holder="flow run B") as previous:
        assert previous is not None and previous["flow_run_id"] == "a-id"
    with workspace_lock(tmp_path, holder="flow run C") as previous:
        assert previous is None


def test_transient_failures_are_told_apart() -> None:
    assert is_transient(1, "ERROR: Unable to acquire lock. Most likely another DVC process is running")
    assert is_transient(-9, "")
    assert not is_transient(2, "inpo: config error: method.inpo.beta: -1.0 is out of range")


def test_tracking_names_and_metric_leaves(tmp_path: Path) -> None:
    cfg = load_config(DEFAULT_PARAMS)
    assert experiment_name(cfg) == "inpo/toy/toy-base"
    got = numeric_leaves({"winrate": {"inpo vs base": 0.75, "ci": [0.6, 0.9]}, "name": "x", "ok": True})
    assert got == {"winrate.inpo vs base": 0.75, "winrate.ci.0": 0.6, "winrate.ci.1": 0.9, "ok": 1.0}
    src = tmp_path / "m.jsonl"
    src.write_text('{"step": 0, "loss": 0.7}\n{"step": 1, "loss": 0.6, "lr": 1e-6}\n')
    assert write_curve_tsv(src, tmp_path / "m.tsv").read_text() == "step\tloss\tlr\n0\t0.7\t\n1\t0.6\t1e-06\n"
