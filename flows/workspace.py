"""What the Prefect flow does to a workspace, without Prefect: lock it, set params, run DVC stages.

Kept apart from :mod:`flows.inpo_flow` so it can be read (and tested) on its own. No math and no
argument parsing here: config comes from ``params.yaml`` + dotted overrides (:mod:`inpo.config`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inpo.params_file import write_params  # noqa: F401  (the flow's params writer)

LOCK_FILE = ".inpo-flow.lock"
PIPELINE_END = "report"
# Output of a failed stage that means "try again" rather than "fix something" (retried by the flow).
TRANSIENT_PATTERNS = (
    r"Unable to acquire lock",  # another dvc process held the repo lock for a moment
    r"Connection(Error| reset| refused| aborted)",
    r"Temporary failure in name resolution",
    r"Read timed out|timed out",
    r"HTTP Error 5\d\d|status(_code)?[ =:]+5\d\d",
    r"NCCL (error|WARN)",
)
TRANSIENT_RETURN_CODES = (-9, 137)  # killed (pre-emption, the OOM killer of a busy node)


class WorkspaceBusyError(RuntimeError):
    """Another flow run holds this workspace."""


class StageError(RuntimeError):
    """A stage command failed; ``transient`` says whether a retry may help."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class StageResult:
    stage: str
    cached: bool  # DVC skipped it (unchanged, or restored from its run cache)
    seconds: float
    started_ms: int = 0  # wall-clock start and end (epoch ms), for the stage's MLflow run
    ended_ms: int = 0


# ---------------------------------------------------------------- the workspace


def project_root() -> Path:
    """The workspace the flow works on: ``$INPO_WORKSPACE``, else the checkout holding this file."""
    return Path(os.environ.get("INPO_WORKSPACE") or Path(__file__).resolve().parents[1]).resolve()


def stage_env(root: Path) -> dict[str, str]:
    """Environment for stage commands: the project's ``.venv/bin`` (or this interpreter's bin) first on PATH."""
    venv_bin = root / ".venv" / "bin"
    bin_dir = venv_bin if venv_bin.is_dir() else Path(sys.executable).parent
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    # the workspace's own code first, even when the venv holds an editable install of another checkout
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env["PYTHONUNBUFFERED"] = "1"
    return env


LOCK_POLL_S = 1.0


@contextmanager
def workspace_lock(
    root: Path, holder: str, wait_s: float = 0.0, log: Callable[[str], None] = print, **record: str
) -> Iterator[dict[str, Any] | None]:
    """Hold ``<root>/.inpo-flow.lock`` (an OS lock: freed if the process dies) or refuse clearly.

    Yields what a previous holder left in the file: a holder that ended normally empties it, so a
    record there means that run was killed, or ended on an exception that may not have reached its
    Prefect server (its pid, flow run id and start time: see :mod:`flows.recovery`). ``record``:
    more fields to store for this holder (e.g. the flow run id). ``wait_s``: how long a second run
    queues for the lock (saying so once through ``log``) before it gives up."""
    path = root / LOCK_FILE
    fh = open(path, "a+")
    deadline, told = time.monotonic() + wait_s, False
    while True:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            fh.seek(0)
            info = fh.read().strip() or "unknown holder"
            if time.monotonic() >= deadline:
                fh.close()
                raise WorkspaceBusyError(
                    f"workspace {root} is busy: another inpo flow run holds {path} ({info}). One flow run "
                    "per workspace at a time: wait for it to finish (or cancel it), or use another checkout."
                ) from None
            if not told:
                log(f"workspace {root} is busy ({info}): queued, waiting up to {wait_s:.0f} s for it")
                told = True
            time.sleep(min(LOCK_POLL_S, max(0.0, deadline - time.monotonic())))
    try:
        fh.seek(0)
        try:
            previous = json.loads(fh.read() or "null")
        except ValueError:
            previous = None
        fh.seek(0)
        fh.truncate()
        mine = {"holder": holder, "pid": os.getpid(), "host": socket.gethostname(), **record}
        fh.write(json.dumps({**mine, "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        fh.flush()
        yield previous if isinstance(previous, dict) else None
        fh.seek(0)
        fh.truncate()  # ended normally: nothing for the next holder to clear up
    finally:  # an exception (SIGTERM included) leaves the record: its server may be gone already
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


# ---------------------------------------------------------------- parameters


def named_overrides(
    raw: dict[str, Any],
    methods: list[str] | None = None,
    beta: float | None = None,
    inversion_steps: int | None = None,
    max_steps: int | None = None,
    model: str | None = None,
    prompt_sets: list[str] | None = None,
) -> list[str]:
    """The flow's named parameters as dotted overrides (``beta`` goes to every listed method with a β)."""
    out: list[str] = []
    if methods is not None:
        out.append(f"methods=[{','.join(methods)}]")
    if beta is not None:
        chosen = methods if methods is not None else list(raw.get("methods") or [])
        method_sections = raw.get("method") or {}
        out += [f"method.{m}.beta={beta}" for m in chosen if "beta" in (method_sections.get(m) or {})]
    if inversion_steps is not None:
        out.append(f"method.inpo.inversion.steps={inversion_steps}")
    if max_steps is not None:
        out.append(f"train.max_steps={max_steps}")
    if model is not None:
        out.append(f"model.pretrained={model}")
    if prompt_sets is not None:
        out.append(f"eval.prompt_sets=[{','.join(prompt_sets)}]")
    return out


# ---------------------------------------------------------------- stages


def pipeline_stages(cfg: Any, root: Path, until: str = PIPELINE_END) -> list[str]:
    """DVC stage names to run, in order, through ``until`` (the stage table's order; see
    :func:`inpo.pipeline.stages.pipeline_stages`)."""
    from inpo.pipeline.stages import pipeline_stages as table_stages

    return table_stages(cfg, until, root)


_SPLIT = re.compile(r"[\r\n]+")


def stream_command(
    cmd: list[str],
    root: Path,
    log: Callable[[str], None],
    tail_lines: int = 40,
    progress_every_s: float = 2.0,
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run ``cmd`` in ``root``, forwarding each output line to ``log`` (progress bars at most every
    ``progress_every_s`` seconds); return (exit code, the last ``tail_lines`` lines). The command
    runs under :mod:`inpo.guard`: if this process is killed (even ``kill -9``), the command's whole
    process tree (``dvc repro`` → ``inpo train`` → its workers) is stopped within a second.
    ``env``: variables added to :func:`stage_env`'s."""
    guarded = [sys.executable, "-m", "inpo.guard", str(os.getpid()), "--", *cmd]  # dies with us
    proc = subprocess.Popen(
        guarded, cwd=root, env={**stage_env(root), **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    tail: deque[str] = deque(maxlen=tail_lines)
    pending, last_progress = "", 0.0
    while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
        parts = _SPLIT.split(pending + chunk.decode(errors="replace"))
        pending = parts.pop()
        for line in (p.rstrip() for p in parts):
            if not line:
                continue
            is_progress = "%|" in line or "it/s]" in line
            now = time.monotonic()
            if is_progress and now - last_progress < progress_every_s and "100%" not in line:
                continue
            last_progress = now if is_progress else last_progress
            tail.append(line)
            log(line)
    if pending.strip():
        tail.append(pending.rstrip())
        log(pending.rstrip())
    return proc.wait(), "\n".join(tail)


def is_transient(returncode: int, output: str) -> bool:
    return returncode in TRANSIENT_RETURN_CODES or any(re.search(p, output) for p in TRANSIENT_PATTERNS)


def run_dvc_stage(
    root: Path, stage: str, log: Callable[[str], None], env: dict[str, str] | None = None
) -> StageResult:
    """``dvc repro --single-item <stage>``: runs it if its deps/params changed, else DVC skips it
    (``env``: added to the stage command's environment, e.g. the MLflow run it tracks live to)."""
    start, started_ms = time.perf_counter(), int(time.time() * 1000)
    lines: list[str] = []

    def keep(line: str) -> None:
        if "stage" in line.lower():
            lines.append(line)
        log(line)

    rc, tail = stream_command(["dvc", "repro", "--single-item", stage], root, keep, env=env)
    if rc != 0:
        raise StageError(
            f"stage {stage} failed (dvc exit code {rc}):\n{tail}", transient=is_transient(rc, tail)
        )
    ran = any(f"Running stage '{stage}'" in line for line in lines)
    seconds, ended_ms = time.perf_counter() - start, int(time.time() * 1000)
    return StageResult(stage, cached=not ran, seconds=seconds, started_ms=started_ms, ended_ms=ended_ms)


def run_check(root: Path, overrides: list[str], log: Callable[[str], None]) -> None:
    """``inpo check <overrides>``: weights, data and config are usable; raises with its message."""
    rc, tail = stream_command(["inpo", "check", "--params", "params.yaml", *overrides], root, log)
    if rc != 0:
        raise StageError(f"pre-flight `inpo check` failed:\n{tail}", transient=False)


def dvc_status(root: Path) -> dict[str, list[Any]] | None:
    """``dvc status --json``: ``{stage: [what changed, ...]}`` for the stages that differ from
    ``dvc.lock`` (empty: clean); None when DVC could not say (its message is not a status)."""
    try:
        out = subprocess.run(
            ["dvc", "status", "--json"], cwd=root, env=stage_env(root), capture_output=True, text=True, timeout=300
        )
        status = json.loads(out.stdout or "null") if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    return status if isinstance(status, dict) else None


def status_note(
    status: dict[str, list[Any]] | None, overrides: list[str], kept: bool, ran: list[str]
) -> str:
    """What ``dvc status`` says after a flow run, in words: which of the stages it ``ran`` differ
    and why (a run with overrides leaves dvc.lock and the outputs describing those overrides), and
    which stages outside this run DVC also lists."""
    if status is None:
        return "dvc status: DVC could not report a status (run `dvc status` to see why)"
    mine = sorted(s for s in status if s in ran)
    others = sorted(s for s in status if s not in ran)
    outside = f"; not part of this run: {', '.join(others)}" if others else ""
    if not mine:
        return f"dvc status: clean for the stages this run ran (dvc.lock, outputs and params.yaml agree){outside}"
    stages = ", ".join(mine)
    if overrides and not kept:
        return (
            f"dvc status: {stages} differ from params.yaml: dvc.lock and the outputs are this run's, with "
            f"the overrides {overrides}, and params.yaml is yours again. `dvc repro` brings the outputs "
            "back to params.yaml (restored from DVC's run cache where that config ran before); "
            f"keep_overrides=true leaves the overrides in params.yaml instead (as `dvc exp run` does){outside}"
        )
    return f"dvc status: {stages} differ from dvc.lock (files edited while the run ran?){outside}"
