#!/usr/bin/env bash
# The main job, one command: set-up, then the full pipeline through Prefect → DVC → MLflow.
#
#   scripts/run.sh                         # toy world: prints the win-rate table, stops what it started
#   scripts/run.sh --keep-ui               # ... then keeps the Prefect and MLflow UIs up (Ctrl-C stops)
#   scripts/run.sh --no-setup              # use the existing .venv as it is (skip scripts/setup.sh)
#   scripts/run.sh --param max_steps=50 --param 'overrides=["method.inpo.beta=2000"]'   # flow parameters
#
# Steps: scripts/setup.sh (idempotent) → a Prefect server on 127.0.0.1 (SQLite under .prefect/, a
# free port, analytics off) → `python -m flows.serve` serving the deployment inpo/full →
# `prefect deployment run inpo/full --watch` (pre-flight, then every DVC stage through `report`;
# DVC skips what is unchanged, so a second run reuses its cache) → the results table
# (python -m flows.results) → the commands that reopen the UIs on the same stores.
# Works in the git checkout it lives in (DVC needs the git repo). See docs/pipeline.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
KEEP_UI=0
SETUP=1
PORT=""
PARAMS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --keep-ui) KEEP_UI=1 ;;
    --no-setup) SETUP=0 ;;
    --port) PORT=$2; shift ;;
    --param|-p) PARAMS+=(--param "$2"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (expected --keep-ui, --no-setup, --port N, --param KEY=VALUE)" >&2; exit 2 ;;
  esac
  shift
done

git rev-parse --is-inside-work-tree >/dev/null 2>&1 \
  || { echo "run.sh: $ROOT is not a git repository; DVC needs one (clone the project with git)" >&2; exit 1; }

T0=$(date +%s)
if [ "$SETUP" -eq 1 ]; then bash scripts/setup.sh; fi
if [ ! -f inpo/assets/toy-base/model_index.json ] && [ ! -d inpo/assets/toy-base/unet ]; then
  echo "[run] the toy base model is not in this checkout: training it first (inpo world base)" >&2
  .venv/bin/inpo world base --params params.yaml
fi
[ -x .venv/bin/inpo ] || { echo "run.sh: .venv/bin/inpo is missing; run without --no-setup" >&2; exit 1; }
T_SETUP=$(date +%s)
PY=$ROOT/.venv/bin/python
BIN=$ROOT/.venv/bin

# No telemetry anywhere; offline model hubs unless the caller says otherwise (the toy world needs none).
export PREFECT_HOME="$ROOT/.prefect"          # the server's SQLite database: .prefect/prefect.db
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_RUNNER_POLL_FREQUENCY=1
export DO_NOT_TRACK=1 DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true HF_HUB_DISABLE_TELEMETRY=1
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
export TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
export INPO_WORKSPACE="$ROOT" PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PATH="$BIN:$PATH"
mkdir -p "$PREFECT_HOME"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_http URL SECONDS PID: until URL answers 200; fails early if PID exits.
wait_http() {
  "$PY" - "$@" <<'EOF'
import os, sys, time
import httpx
url, timeout, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"run.sh: the process {pid} exited before {url} answered")
    try:
        if httpx.get(url, timeout=2).status_code == 200:
            sys.exit(0)
    except httpx.HTTPError:
        pass
    time.sleep(0.5)
sys.exit(f"run.sh: {url} did not answer within {timeout:.0f} s")
EOF
}

# Background processes, each under inpo.guard: its own process group, which ends when this script
# ends, even by kill -9 (no trap runs then; the guard sees its parent gone within a second).
PIDS=()
start_bg() {  # start_bg LOG CMD...: sets BG_PID
  local log=$1; shift
  "$PY" -m inpo.guard $$ -- "$@" >"$log" 2>&1 &
  BG_PID=$!
  disown "$BG_PID"  # watched with kill -0, not wait: no "Killed" job notice when its guard ends it
  PIDS+=("$BG_PID")
}
stop_pid() {  # SIGTERM the process group, then SIGKILL after 20 s
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done  # serving before the server
  [ "${#PIDS[@]}" -eq 0 ] || echo "[run] stopped what it started (the served deployment, then the Prefect server)" >&2
  rm -f "${SERVER_RECORD:-/nonexistent}"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One server per database: refuse (clearly, at once) when an earlier run's server still holds it.
SERVER_RECORD="$PREFECT_HOME/server.pid"
if [ -f "$SERVER_RECORD" ]; then
  read -r OLD_PID OLD_PORT <"$SERVER_RECORD" || true
  if [ -n "${OLD_PID:-}" ] && kill -0 "$OLD_PID" 2>/dev/null \
     && tr '\0' ' ' <"/proc/$OLD_PID/cmdline" 2>/dev/null | grep -q "prefect server start"; then
    echo "run.sh: a Prefect server is still running on $PREFECT_HOME/prefect.db (pid $OLD_PID, port $OLD_PORT)," \
      "started by another run.sh. Stop it (kill -- -$OLD_PID) or wait for that run to end, then try again." >&2
    exit 1
  fi
fi
PORT=${PORT:-$(free_port)}
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
echo "[run] Prefect server on http://127.0.0.1:$PORT (database $PREFECT_HOME/prefect.db; log .prefect/server.log)" >&2
start_bg "$PREFECT_HOME/server.log" "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" --analytics-off
SERVER_PID=$BG_PID
echo "$SERVER_PID $PORT" >"$SERVER_RECORD"
wait_http "$PREFECT_API_URL/health" 120 "$SERVER_PID" || { tail -n 30 "$PREFECT_HOME/server.log" >&2; exit 1; }

echo "[run] serving the deployment inpo/full (python -m flows.serve; log .prefect/serve.log)" >&2
start_bg "$PREFECT_HOME/serve.log" "$PY" -m flows.serve
SERVE_PID=$BG_PID
wait_http "$PREFECT_API_URL/deployments/name/inpo/full" 120 "$SERVE_PID" \
  || { tail -n 30 "$PREFECT_HOME/serve.log" >&2; exit 1; }
T_READY=$(date +%s)

echo "[run] prefect deployment run inpo/full --watch ${PARAMS[*]:-}" >&2
FLOW_RC=0  # in the background + wait: a SIGTERM to this script is handled at once, not after the flow
"$BIN/prefect" deployment run inpo/full --watch "${PARAMS[@]}" &
WATCH_PID=$!
PIDS+=("$WATCH_PID")
wait "$WATCH_PID" || FLOW_RC=$?
T_FLOW=$(date +%s)
if [ "$FLOW_RC" -ne 0 ]; then
  echo "[run] the flow run failed (exit $FLOW_RC); its stage logs: .prefect/serve.log (last lines below)" >&2
  tail -n 40 "$PREFECT_HOME/serve.log" >&2
fi

echo
"$PY" -m flows.results --root "$ROOT" || true  # says why when a run stopped before score (until=...)
TRACKING_URI=$("$PY" -m flows.results --root "$ROOT" --tracking-uri)
echo
echo "[run] wall time: set-up $((T_SETUP - T0)) s, Prefect up $((T_READY - T_SETUP)) s, flow run $((T_FLOW - T_READY)) s, total $((T_FLOW - T0)) s"
echo "Reopen the UIs on the same stores (from $ROOT):"
echo "  Prefect: PREFECT_HOME=.prefect .venv/bin/prefect server start --host 127.0.0.1 --port 4200 --analytics-off   # http://127.0.0.1:4200"
echo "  MLflow:  .venv/bin/mlflow ui --backend-store-uri $TRACKING_URI --host 127.0.0.1   # http://127.0.0.1:5000"
echo "Report: outputs/report/report.html   Pipeline state: dvc status, dvc metrics show, dvc exp show"

if [ "$KEEP_UI" -eq 1 ]; then
  MLFLOW_PORT=$(free_port)
  start_bg "$PREFECT_HOME/mlflow-ui.log" "$BIN/mlflow" ui --backend-store-uri "$TRACKING_URI" \
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1
  wait_http "http://127.0.0.1:$MLFLOW_PORT/health" 120 "$BG_PID" || tail -n 20 "$PREFECT_HOME/mlflow-ui.log" >&2
  echo
  echo "[run] UIs up until Ctrl-C: Prefect http://127.0.0.1:$PORT   MLflow http://127.0.0.1:$MLFLOW_PORT"
  echo "      (the deployment inpo/full stays served: run it again from the Prefect UI or another shell)"
  while :; do sleep 1; done
fi
exit "$FLOW_RC"
