"""How a later run closes the MLflow runs a killed pipeline run left RUNNING (see
:mod:`flows.recovery`): runs are told apart by the ``inpo.host`` / ``inpo.pid`` / ``inpo.workspace``
tags of :func:`inpo.tracking.owner_tags`."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from .config import Config
from .guard import pid_alive
from .tracking import _client, experiment_name, tracking_uri


def close_orphaned_runs(cfg: Config, root: str | Path, log: Any = print) -> list[str]:
    """Mark KILLED (with an end time) the RUNNING pipeline runs of this workspace and host whose
    process is gone: what a killed flow run leaves. Call with the workspace lock held."""
    root = Path(root).resolve()
    uri = tracking_uri(cfg, root)
    client = _client(uri)
    found = client.get_experiment_by_name(experiment_name(cfg))
    if found is None:
        return []
    host = socket.gethostname()
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`inpo.workspace` = '{root}' "
        f"and tags.`inpo.host` = '{host}'",
        max_results=1000,
    )
    killed = []
    for run in runs:
        pid = run.data.tags.get("inpo.pid", "")
        if pid.isdigit() and pid_alive(int(pid)):
            continue
        client.set_terminated(run.info.run_id, "KILLED", end_time=int(time.time() * 1000))
        killed.append(str(run.info.run_id))
        log(f"MLflow run {run.info.run_id} ({run.info.run_name}): its process {pid} is gone; marked KILLED")
    return killed
