"""Serve the ``inpo/full`` deployment from this process (no work pool needed):

    python -m flows.serve            # then: prefect deployment run inpo/full --watch

Stops on SIGTERM/Ctrl-C. For a process / Docker / Kubernetes work pool use ``prefect deploy``
with ``prefect.yaml`` instead.
"""

from __future__ import annotations

from flows.inpo_flow import inpo

DEPLOYMENT = "full"


def main() -> None:
    inpo.serve(name=DEPLOYMENT, tags=["inpo"], description="The inpo pipeline: DVC stages, MLflow tracking")


if __name__ == "__main__":
    main()
