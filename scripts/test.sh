#!/usr/bin/env bash
# The test command: set-up (idempotent), lint (ruff), types (mypy), then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 DVC_NO_ANALYTICS=1 \
  MLFLOW_DISABLE_TELEMETRY=true PREFECT_SERVER_ANALYTICS_ENABLED=false TOKENIZERS_PARALLELISM=false
echo "== ruff" && .venv/bin/ruff check inpo evaluation flows benchmarks tests
echo "== mypy" && .venv/bin/mypy inpo evaluation flows benchmarks
echo "== pytest" && .venv/bin/pytest -q "$@"
