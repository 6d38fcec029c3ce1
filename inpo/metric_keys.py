"""One rule for metric names: what MLflow accepts (alphanumerics and ``_-. :/``), everything else ``_``.

mlflow_key("winrate.inpo vs base")            # unchanged
metric_key("m", "my set/x", "clip", "median")   # "m/my set_x/clip/median": parts joined by "/"
"""

from __future__ import annotations

import re

BAD_CHARS = re.compile(r"[^0-9A-Za-z_\-. :/]")


def mlflow_key(key: str) -> str:
    """``key`` with every character MLflow refuses replaced by ``_``."""
    return BAD_CHARS.sub("_", key)


def metric_key(*parts: object) -> str:
    """``model/prompt_set/metric/stat``: each part made safe, a ``/`` inside a part included."""
    return "/".join(mlflow_key(str(p)).replace("/", "_") for p in parts)
