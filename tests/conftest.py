"""Test-wide settings: offline hubs, no telemetry, deterministic single-threaded torch."""

from __future__ import annotations

import os

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)
for _key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):  # a developer's own server stays untouched
    os.environ.pop(_key, None)

import torch  # noqa: E402

torch.set_num_threads(1)
