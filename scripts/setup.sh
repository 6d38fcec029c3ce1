#!/usr/bin/env bash
# Idempotent set-up: the virtual environment .venv at the repo root with the pinned dependencies
# (CPU-usable torch + torchvision pair included) and the project installed editable.
# Re-runs pip only when requirements.txt or pyproject.toml changed since the last set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp=.venv/.inpo-setup-stamp
want=$( (cat requirements.txt pyproject.toml; echo "${TORCH_INDEX_URL:-}") | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/inpo ]; then
  exit 0
fi
echo "[setup] creating .venv and installing pinned dependencies (first time: a few minutes)" >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip_install() {  # pip's own exit status, with the machine's noisy index warnings filtered out
  local rc=0
  .venv/bin/python -m pip install --quiet "$@" > .venv/pip.log 2>&1 || rc=$?
  grep -v "^WARNING: Location" .venv/pip.log >&2 || true
  return $rc
}
# One switch for the torch build: PyPI's wheels (the default) are the CUDA build on x86_64 Linux (GPU
# machines; about 3 GB of CUDA libraries). On a CPU-only machine with access to PyTorch's own index:
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu scripts/setup.sh
# installs the same torch/torchvision versions as CPU builds first (requirements.txt is then met).
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  pip_install --index-url "$TORCH_INDEX_URL" $(grep -E '^(torch|torchvision)==' requirements.txt)
fi
pip_install -r requirements.txt
pip_install --no-deps -e .
.venv/bin/python -c "import torch, torchvision, diffusers, transformers, open_clip, prefect, mlflow, dvc" \
  || { echo "[setup] the environment does not import; see the errors above" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[setup] done: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')" >&2
