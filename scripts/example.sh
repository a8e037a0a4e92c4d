#!/usr/bin/env bash
# Sets up .venv if needed, then runs the echo example: a replyer service and a main-mode
# requester that sends it three requests. The replyer is stopped with SIGTERM afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SF=.venv/bin/service_framework
$SF -s examples/echo/replyer.py -a examples/echo/addresses.json -c examples/echo/replyer_config.json &
REPLYER=$!
trap 'kill -TERM $REPLYER 2>/dev/null || true' EXIT
$SF -s examples/echo/requester.py -a examples/echo/addresses.json \
    -c examples/echo/requester_config.json -m
kill -TERM $REPLYER
wait $REPLYER
trap - EXIT
echo "echo example: OK"
