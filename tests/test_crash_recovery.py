"""A killed orchestrated run leaves nothing behind (issue 11, part 2): real processes, real SIGKILL.

The "flow" here is a subprocess running the flow's own workspace steps (lock, recovery, the
parameters written for the run, a stage command streamed through ``flows.workspace``); the test
kills it mid-stage with SIGKILL and checks what the next start finds and clears."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from flows.recovery import KEPT_COPY, RECOVERY_FILE, recover_killed_run
from flows.workspace import workspace_lock
from inpo.config import DEFAULT_PARAMS, load_config, to_dict
from inpo.guard import pid_alive

ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(Path(__file__).parents[1])}


def _wait_for(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout} s")


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_running(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed child of ours is a zombie until reaped)."""
    if not pid_alive(pid):
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


FLOW = """
import os, sys
from pathlib import Path
from flows.recovery import recover_killed_run, run_parameters
from flows.workspace import stream_command, workspace_lock
from inpo.config import load_config
from inpo.tracking import PipelineTracker

root = Path(sys.argv[1])
with workspace_lock(root, holder="flow run test", flow_run_id="") as previous:
    recover_killed_run(root, previous, print, None)
    with run_parameters(root, ["train.max_steps=7", "method.inpo.beta=1234"]):
        cfg = load_config(root / "params.yaml")
        PipelineTracker(cfg, root).start(run_name="killed")
        # the "stage": a process tree (a shell with a grandchild), as dvc repro -> inpo train
        stage = "sh -c 'sleep 300 & echo $! > {root}/grandchild; echo $$ > {root}/stage; wait'"
        stream_command(["sh", "-c", stage.format(root=root)], root, print)
"""


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, bytes]:
    cfg = load_config(DEFAULT_PARAMS, [f"tracking.uri=sqlite:///{tmp_path}/mlruns.db"])
    text = "# the user's own params file, comments and all\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False)
    (tmp_path / "params.yaml").write_text(text)
    return tmp_path, text.encode()


def _kill_flow_mid_stage(root: Path) -> dict[str, int]:
    script = root / "flow.py"
    script.write_text(textwrap.dedent(FLOW))
    proc = subprocess.Popen([sys.executable, str(script), str(root)], env=ENV, cwd=root)
    pids = {name: int(_wait_for(root / name)) for name in ("stage", "grandchild")}
    assert b"max_steps: 7" in (root / "params.yaml").read_bytes()  # the run's overrides are in
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return pids


@pytest.mark.slow
def test_sigkill_of_the_flow_mid_stage_ends_the_stage_tree_and_the_next_start_clears_up(workspace):
    root, pristine = workspace
    pids = _kill_flow_mid_stage(root)
    assert _gone(list(pids.values())), f"stage processes outlived the killed flow: {pids}"
    assert (root / RECOVERY_FILE).is_file() and (root / "params.yaml").read_bytes() != pristine

    cfg = load_config(root / "params.yaml")
    said: list[str] = []
    with workspace_lock(root, holder="next run") as previous:
        assert previous is not None and previous["holder"] == "flow run test"
        done = recover_killed_run(root, previous, said.append, cfg)
    assert (root / "params.yaml").read_bytes() == pristine  # byte for byte, comments kept
    assert not (root / RECOVERY_FILE).exists()
    assert done["params_restored"] and len(done["mlflow_killed"]) == 1
    from mlflow import MlflowClient

    from inpo.tracking import tracking_uri

    run = MlflowClient(tracking_uri(cfg, root)).get_run(done["mlflow_killed"][0])
    assert run.info.status == "KILLED" and run.info.end_time is not None
    assert run.data.tags["inpo.workspace"] == str(root) and run.data.tags["inpo.pid"].isdigit()
    assert any("restored params.yaml" in s for s in said) and any("KILLED" in s for s in said)
    with workspace_lock(root, holder="third run") as previous:  # a clean end leaves no record
        assert previous is None
        assert recover_killed_run(root, None, said.append, cfg)["mlflow_killed"] == []


def test_params_edited_after_the_kill_are_left_alone(workspace):
    root, pristine = workspace
    from flows.recovery import run_parameters

    class Killed(BaseException):
        pass

    record = root / RECOVERY_FILE
    with pytest.raises(Killed):
        with run_parameters(root, ["train.max_steps=7"]):
            saved = record.read_text()
            raise Killed
    record.write_text(saved)  # as if the process had died inside the block (no restore ran)
    user_edit = pristine + b"# edited by the user after the crash\n"
    (root / "params.yaml").write_bytes(user_edit)
    said: list[str] = []
    recover_killed_run(root, None, said.append)
    assert (root / "params.yaml").read_bytes() == user_edit
    assert (root / KEPT_COPY).read_bytes() == pristine and not record.exists()
    assert "left as it is" in said[0]


def test_guard_ends_its_group_when_its_parent_is_killed(tmp_path):
    parent = textwrap.dedent(
        f"""
        import subprocess, sys, os, time
        g = subprocess.Popen([sys.executable, "-m", "inpo.guard", str(os.getpid()), "--",
                              "sh", "-c", "sleep 300 & echo $! > {tmp_path}/child; wait"])
        print(g.pid, flush=True)
        time.sleep(300)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], env=ENV, stdout=subprocess.PIPE, text=True)
    guard = int(proc.stdout.readline())  # type: ignore[union-attr]
    child = int(_wait_for(tmp_path / "child"))
    assert _running(child) and _running(guard)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _gone([guard, child], timeout=15), "the guard left its command running after its parent died"
