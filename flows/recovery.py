"""What a killed flow run leaves behind, and how the next run clears it (with the workspace lock held).

- ``params.yaml``: the flow writes a run's overrides into it (as ``dvc exp run -S`` does). Before that
  it keeps the pristine file in ``.inpo-flow-params.json`` (atomically); the run restores it at the
  end; if the run is killed, the next flow run restores it before anything else, and says so. If
  the file was edited after the kill, it is left alone and the pristine copy kept as
  ``params.yaml.before-killed-run``. Likewise a file edited *during* a run is never overwritten at its
  end: the pre-run file is kept as ``params.yaml.before-flow-run``.
- MLflow runs the killed run left RUNNING (tagged ``inpo.host`` / ``inpo.pid`` / ``inpo.workspace``
  by :class:`inpo.tracking.PipelineTracker`) are marked KILLED with an end time.
- Its Prefect flow run (id in the lock record) is set to Crashed when it still shows a non-final
  state (killed, or stopped together with its server, so its last state never reached the API).

Stage processes never outlive the flow: they run under :mod:`inpo.guard`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inpo.io import write_bytes_atomic, write_json_atomic
from inpo.params_file import write_params

RECOVERY_FILE = ".inpo-flow-params.json"
KEPT_COPY = "params.yaml.before-killed-run"
EDITED_DURING_RUN = "params.yaml.before-flow-run"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def run_parameters(
    root: Path, overrides: list[str], keep: bool = False, log: Callable[[str], None] = print
) -> Iterator[None]:
    """``params.yaml`` with ``overrides`` for the duration of the block, restored afterwards (``keep``:
    left with them when the block succeeds, as ``dvc exp run`` leaves a workspace); a recovery
    record holds the pristine bytes while it is edited."""
    params, record = root / "params.yaml", root / RECOVERY_FILE
    original = params.read_bytes()
    write_json_atomic(record, {"pid": os.getpid(), "original": original.decode(), "written_sha256": None})
    written = original
    try:
        write_params(params, overrides)
        written = params.read_bytes()
        write_json_atomic(
            record, {"pid": os.getpid(), "original": original.decode(), "written_sha256": _sha(written)}
        )
        yield
    except BaseException:
        _restore(params, original, written, log)
        record.unlink(missing_ok=True)
        raise
    if not keep:
        _restore(params, original, written, log)
    record.unlink(missing_ok=True)


def _restore(params: Path, original: bytes, written: bytes, log: Callable[[str], None]) -> None:
    """Put ``original`` back, unless someone edited the file while the run held it: their edit
    stays, and the file from before the run goes to ``params.yaml.before-flow-run``."""
    current = params.read_bytes() if params.is_file() else b""
    if current in (written, original):
        write_bytes_atomic(params, original)
        return
    write_bytes_atomic(params.with_name(EDITED_DURING_RUN), original)
    log(f"params.yaml was edited during the flow run: left as it is; the file from before the run is in {EDITED_DURING_RUN}")


def recover_params(root: Path, log: Callable[[str], None]) -> bool:
    """Undo a killed run's edit of ``params.yaml`` (see the module docstring); True if it did anything."""
    params, record = root / "params.yaml", root / RECOVERY_FILE
    if not record.is_file():
        return False
    try:
        data = json.loads(record.read_text())
        original = str(data["original"]).encode()
    except (OSError, ValueError, KeyError):
        log(f"{record}: unreadable recovery record (left in place); check params.yaml by hand")
        return False
    current = params.read_bytes() if params.is_file() else b""
    written = data.get("written_sha256")
    if current == original:
        pass
    elif written is None or _sha(current) == written:
        write_bytes_atomic(params, original)
        log(f"restored params.yaml: flow run pid {data.get('pid')} was killed with its overrides in it")
    else:
        write_bytes_atomic(root / KEPT_COPY, original)
        log(
            f"params.yaml changed after flow run pid {data.get('pid')} was killed: left as it is; "
            f"the file from before that run is in {KEPT_COPY}"
        )
    record.unlink()
    return True


def mark_prefect_run_crashed(flow_run_id: str, log: Callable[[str], None]) -> bool:
    """Set flow run ``flow_run_id`` to Crashed if the Prefect API still shows it running."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(uuid.UUID(flow_run_id))
        except Exception as err:  # deleted, or another server: nothing to mark
            log(f"killed flow run {flow_run_id}: not found on this Prefect API ({type(err).__name__})")
            return False
        if run.state is None or run.state.is_final():
            return False
        message = (
            "the flow run's process ended without reporting a final state (killed, or stopped with "
            "its server); marked by the next flow run on this workspace"
        )
        client.set_flow_run_state(uuid.UUID(flow_run_id), Crashed(message=message), force=True)
    log(f"marked Prefect flow run {flow_run_id} Crashed (it ended without reporting a final state)")
    return True


def recover_killed_run(
    root: Path, previous: dict[str, Any] | None, log: Callable[[str], None], cfg: Any = None
) -> dict[str, Any]:
    """Everything above, for the holder record ``previous`` the workspace lock found (None: the last
    run ended normally). Returns what was done, for logs and tests."""
    done: dict[str, Any] = {
        "params_restored": recover_params(root, log),
        "mlflow_killed": [],
        "prefect": False,
    }
    if previous is not None and previous.get("flow_run_id"):
        try:
            done["prefect"] = mark_prefect_run_crashed(str(previous["flow_run_id"]), log)
        except Exception as err:  # no API reachable: the record stays for the UI to show
            log(f"could not mark flow run {previous['flow_run_id']} Crashed: {err}")
    if cfg is not None and cfg.tracking.enabled:
        from inpo.tracking_orphans import close_orphaned_runs

        done["mlflow_killed"] = close_orphaned_runs(cfg, root, log)
    return done
