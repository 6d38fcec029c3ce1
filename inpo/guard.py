"""``python -m inpo.guard PARENT_PID -- CMD ...``: run CMD in a process group of its own and end that
whole group when PARENT_PID dies, even by ``kill -9`` (which runs no clean-up in the parent).

``scripts/run.sh`` starts the Prefect server and the serving process through it, and the flow starts
each DVC stage command through it, so a killed parent never leaves a server, a flow or a training
process running unseen. The guard leads a new session (its pid is the group id: ``kill -- -PID``
stops everything), forwards SIGTERM / SIGINT / SIGHUP to the group, and exits with CMD's status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 0.2
GRACE_S = 10.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def parent_alive(parent: int, original_ppid: int) -> bool:
    """The parent still runs (and we were not re-parented, which is what its death does)."""
    return os.getppid() == original_ppid and pid_alive(parent)


def stop_group(child: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal every process of our group but us, wait ``GRACE_S`` for CMD, then SIGKILL the group."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        os.killpg(os.getpgrp(), sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + GRACE_S
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_S)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.killpg(os.getpgrp(), signal.SIGKILL)  # CMD's leftovers, then the guard itself


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m inpo.guard PARENT_PID -- CMD [ARG ...]", file=sys.stderr)
        return 2
    parent, cmd = int(argv[0]), argv[2:]
    original_ppid = os.getppid()
    if os.getpgrp() != os.getpid():
        os.setsid()
    child = subprocess.Popen(cmd)
    stop_requested: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: stop_requested.append(s))
    while True:
        rc = child.poll()
        if rc is not None:
            return rc if rc >= 0 else 128 - rc
        if stop_requested:
            stop_group(child, stop_requested[0])
        if not parent_alive(parent, original_ppid):
            try:  # the parent's end of our output pipe may be gone with it
                print(f"[guard] parent {parent} is gone: stopping {cmd[0]}", file=sys.stderr, flush=True)
            except OSError:
                pass
            stop_group(child)
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
