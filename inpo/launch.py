"""Multi-process stages: ``inpo train`` / ``inpo sft`` / ``inpo generate`` relaunch themselves under
``accelerate launch`` when ``runtime.num_processes > 1`` or ``runtime.accelerate_config`` is set.

So the DVC stage commands stay ``inpo <stage> --params params.yaml`` on a laptop, an 8-GPU box and a
multi-node cluster alike; the machine shape lives in params (and in the accelerate config file that
`accelerate config` writes, for multi-node, DeepSpeed or FSDP settings).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

from .config import Config

DISTRIBUTED_STAGES = {"inpo.stages.train", "inpo.stages.sft", "inpo.stages.generate"}
_LAUNCHED_ENV = ("WORLD_SIZE", "LOCAL_RANK", "ACCELERATE_LAUNCHED")


def needs_launch(cfg: Config, module: str) -> bool:
    """True when this stage should be relaunched under accelerate (and is not already running under it)."""
    if module not in DISTRIBUTED_STAGES or any(k in os.environ for k in _LAUNCHED_ENV):
        return False
    return cfg.runtime.num_processes > 1 or cfg.runtime.accelerate_config is not None


def launch_command(cfg: Config, argv: Sequence[str]) -> list[str]:
    """``accelerate launch … -m inpo.cli <argv>``; ``--multi_gpu`` also starts N CPU processes over gloo."""
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or shutil.which(
        "accelerate"
    )
    if accelerate is None:
        raise SystemExit("inpo: runtime.num_processes > 1 needs the `accelerate` command on PATH")
    cmd = [accelerate, "launch"]
    if cfg.runtime.accelerate_config is not None:
        cmd += ["--config_file", cfg.runtime.accelerate_config]
    else:
        # `--cpu --num_processes N` silently starts ONE process; `--multi_gpu` starts N (gloo on CPU)
        cmd += ["--multi_gpu", "--num_processes", str(cfg.runtime.num_processes)]
    return [*cmd, "-m", "inpo.cli", *argv]


def relaunch(cfg: Config, argv: Sequence[str]) -> int:
    """Run the stage under accelerate and return its exit status."""
    import subprocess

    env = {**os.environ, "ACCELERATE_LAUNCHED": "1"}
    return subprocess.call(launch_command(cfg, argv), env=env)
