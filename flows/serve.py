"""Serve the ``inpo/full`` and ``inpo/online`` deployments from this process (no work pool needed):

    python -m flows.serve            # then: prefect deployment run inpo/full --watch
                                     #   or: prefect deployment run inpo/online --watch

Stops on SIGTERM/Ctrl-C. For a process / Docker / Kubernetes work pool use ``prefect deploy``
with ``prefect.yaml`` instead.
"""

from __future__ import annotations

from typing import cast

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.inpo_flow import inpo
from flows.online_flow import online

DEPLOYMENT = "full"
ONLINE_DEPLOYMENT = "online"


def main() -> None:
    full = inpo.to_deployment(
        name=DEPLOYMENT, tags=["inpo"], description="The inpo pipeline: DVC stages, MLflow tracking"
    )
    rounds = online.to_deployment(
        name=ONLINE_DEPLOYMENT,
        tags=["inpo"],
        description="Online rounds: sample pairs from the policy, label, train, evaluate (docs/online_rounds.md)",
    )
    serve(cast(RunnerDeployment, full), cast(RunnerDeployment, rounds))  # (to_deployment is sync here)


if __name__ == "__main__":
    main()
