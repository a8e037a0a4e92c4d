#!/usr/bin/env bash
# The multi-host run by hand: three hosts as network namespaces (root and iproute2 needed),
# host B cut off for 5 s and brought back; prints what the client and followers saw.
# The suite runs the same scenario (tests/multihost/test_multihost.py) and asserts on it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" tests/multihost/scenario.py
