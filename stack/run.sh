#!/usr/bin/env bash
# `make run`: the whole system, live, in the foreground. Ctrl-C stops everything this script started, and so
# does the end of the process that started it (make does not pass a SIGTERM it receives on to its recipe).
set -euo pipefail
LAUNCHER=$PPID
cd "$(dirname "$0")/.."
CLI=.venv/bin/stream-scorer
LOGS=.stack/logs
DEMO_RATE=${DEMO_RATE:-20}
MODEL_DIR=${MODEL_DIR:-artifacts}
API_PORT=${API_PORT:-8080}
WORKER_METRICS_PORT=${WORKER_METRICS_PORT:-9108}
export MODEL_DIR API_PORT WORKER_METRICS_PORT
mkdir -p "$LOGS"
eval "$(python3 stack/stack.py env)"
export KAFKA_BOOTSTRAP_SERVERS REDIS_HOST REDIS_PORT

for model in fraud personalization; do
  if ! ls "$MODEL_DIR/$model"/v*/metadata.json >/dev/null 2>&1; then
    echo "==> no $model model in $MODEL_DIR/: training one (simulated data)"
    "$CLI" train "$model"
  fi
done
echo "==> loading the online features computed from history into Redis"
"$CLI" materialize --reset-if-changed

pids=()
stop() {
  trap - EXIT
  echo
  echo "==> stopping worker, API and demo producer"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  echo "==> stopped (the local Kafka/Redis keep running: make stack-down stops them)"
}
trap stop EXIT
trap 'exit 130' INT TERM

"$CLI" worker >"$LOGS/worker.log" 2>&1 &
pids+=($!)
"$CLI" api >"$LOGS/api.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 60); do
  curl -fs "localhost:$API_PORT/ready" >/dev/null 2>&1 && curl -fs "localhost:$WORKER_METRICS_PORT/ready" >/dev/null 2>&1 && break
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a process exited early; see $LOGS/worker.log and $LOGS/api.log"; tail -n 20 "$LOGS"/*.log; exit 1; }
  done
  sleep 1
done

if [ "$DEMO_RATE" != "0" ]; then
  "$CLI" produce mixed --rate "$DEMO_RATE" --quiet >"$LOGS/producer.log" 2>&1 &
  pids+=($!)
fi

cat <<TXT

stream-scorer is running (Ctrl-C stops it).
  API          http://localhost:$API_PORT/docs   (/health /ready /models /metrics)
  try          curl -s localhost:$API_PORT/score/fraud -d '{"card_id": "card_00000042", "transaction_amount": 150.0}'
  worker       http://localhost:$WORKER_METRICS_PORT/metrics   (/health /ready)
  topics       transactions, sessions -> fraud-decisions, personalization-scores (bad input: scoring-dlq)
  read them    .venv/bin/stream-scorer tail fraud-decisions   (or personalization-scores, scoring-dlq)
  demo traffic $DEMO_RATE events/s (make run DEMO_RATE=0 for none)
  logs         $LOGS/worker.log  $LOGS/api.log  $LOGS/producer.log

TXT

tick=0
while true; do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then echo "a process exited; see $LOGS/"; tail -n 5 "$LOGS"/*.log; exit 1; fi
  done
  # reparented (to init or a subreaper): the launcher is gone, even if it lingers as a zombie
  if [ "$LAUNCHER" -gt 1 ] && [ "$(awk '{print $4}' /proc/$$/stat 2>/dev/null)" != "$LAUNCHER" ]; then
    echo "==> the process that started this one ended"
    exit 143
  fi
  if [ $((tick % 10)) -eq 0 ]; then
    scored=$(curl -fs "localhost:$WORKER_METRICS_PORT/metrics" 2>/dev/null | awk '/^stream_events_total\{.*outcome="scored"/ {s+=$2} END {print s+0}' || true)
    echo "$(date +%T)  events scored by the worker: $scored"
  fi
  tick=$((tick + 1))
  sleep 1 &
  wait $! || true
done
