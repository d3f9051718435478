#!/usr/bin/env bash
# The test command: lint, type-check, then unit and integration tests.
# Integration tests start Apache Kafka from jars Maven fetches (deploy/kafka/kafka.sh)
# and chDB in a temp dir; nothing else needs to run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "tests: creating .venv" >&2
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

echo "tests: ruff" >&2
.venv/bin/ruff check .
echo "tests: mypy" >&2
.venv/bin/mypy
echo "tests: pytest" >&2
.venv/bin/pytest "$@"
