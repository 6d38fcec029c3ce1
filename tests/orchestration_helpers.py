"""Helpers of the end-to-end orchestration tests: loopback servers, deployment runs, DVC calls."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def env_for(ws: Path, api: str, home: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ws),
        "INPO_WORKSPACE": str(ws),
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
    }


def run_deployment(env: dict[str, str], ws: Path, *params: str, deployment: str = "inpo/full") -> str:
    """``prefect deployment run <deployment> --watch``; return the flow run id."""
    args = [sys.executable, "-m", "prefect", "deployment", "run", deployment, "--watch"]
    for p in params:
        args += ["--param", p]
    out = subprocess.run(args, cwd=ws, env=env, capture_output=True, text=True, timeout=400)
    text = out.stdout + out.stderr
    ids = [w for w in text.replace("'", " ").split() if len(w) == 36 and w.count("-") == 4]
    assert ids, f"no flow run id in the output of {args}:\n{text}"
    return ids[0]


def flow_run(api: str, run_id: str) -> dict:
    return httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()


def task_names(api: str, run_id: str) -> list[str]:
    body = {"flow_runs": {"id": {"any_": [run_id]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return [t["name"] for t in httpx.post(f"{api}/task_runs/filter", json=body, timeout=10).json()]


def declared_in_lock(ws: Path) -> list[str]:
    lock = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]
    return [o["path"].rstrip("/") for entry in lock.values() for o in entry.get("outs", [])]


def dvc(ws: Path, env: dict[str, str], *args: str) -> str:
    out = subprocess.run(["dvc", *args], cwd=ws, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def dvc_json(ws: Path, env: dict[str, str], *args: str) -> Any:
    out = subprocess.run(
        ["dvc", *args, "--json"], cwd=ws, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def guards_of(pid: int, running: bytes = b"", wait_s: float = 0.0) -> list[int]:
    """Processes running ``python -m inpo.guard <pid> -- ...`` (a flow's commands), those whose
    command line holds ``running`` when given; ``wait_s``: wait that long for them to be gone."""
    deadline = time.monotonic() + wait_s
    while (found := _guards(pid, running)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def _guards(pid: int, running: bytes) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().split(") ")[1][0]
        except (OSError, IndexError):
            continue
        named = not running or running in argv
        if b"inpo.guard" in argv and str(pid).encode() in argv and named and state != "Z":
            found.append(int(proc.name))
    return found


def start_flow_until_a_stage_runs(ws: Path, env: dict[str, str], *params: str) -> int:
    """Start a deployment run (no ``--watch``) and wait until its flow runs ``dvc repro`` under a
    guard; return the flow run's pid (from the workspace lock record)."""
    args = [sys.executable, "-m", "prefect", "deployment", "run", "inpo/full"]
    for p in params:
        args += ["--param", p]
    subprocess.run(args, cwd=ws, env=env, capture_output=True, text=True, timeout=120, check=True)
    deadline, flow_pid, guards = time.monotonic() + 120, None, []
    while time.monotonic() < deadline and not guards:
        record = (ws / ".inpo-flow.lock").read_text() if (ws / ".inpo-flow.lock").exists() else ""
        if record.strip():
            flow_pid = json.loads(record)["pid"]
            guards = guards_of(flow_pid, running=b"repro")
        time.sleep(0.05)
    assert flow_pid is not None and guards, "the flow never reached a stage"
    return int(flow_pid)


def start_mlflow_server(ws: Path, env: dict[str, str], uri: str, port: int) -> subprocess.Popen:
    """``mlflow server`` on loopback over the store ``uri`` (stop it with :func:`stop`)."""
    args = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", uri]
    args += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return subprocess.Popen(args, cwd=ws, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def images_written(ws: Path) -> dict[str, int]:
    """When each model's toy images were last written (mtime_ns of one image per model folder)."""
    return {p.parent.parent.name: p.stat().st_mtime_ns for p in (ws / "outputs/generate").glob("*/toy/*.png")}


@contextmanager
def prefect_server_and_serve(ws: Path, env: dict[str, str], port: int, logs: Path) -> Iterator[None]:
    """A Prefect server on loopback ``port`` and ``python -m flows.serve`` serving ``inpo/full`` from
    ``ws``, both stopped on exit (their logs: ``logs/server.log``, ``logs/serve.log``)."""
    api = f"http://127.0.0.1:{port}/api"
    args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with open(logs / "server.log", "w") as log, open(logs / "serve.log", "w") as serve_log:
        server = subprocess.Popen(
            [*args, "--analytics-off"], cwd=logs, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        served = None
        try:
            wait_http(f"{api}/health", 90, server)
            serve = [sys.executable, "-m", "flows.serve"]
            served = subprocess.Popen(serve, cwd=ws, env=env, stdout=serve_log, stderr=subprocess.STDOUT)
            wait_http(f"{api}/deployments/name/inpo/full", 90, served)
            yield
        finally:
            if served is not None:
                stop(served)
            stop(server)
