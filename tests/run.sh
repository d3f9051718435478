#!/usr/bin/env bash
# The test command: lint, format check, type-check, layering contracts, then unit and
# integration tests. Integration tests start Apache Kafka from jars Maven fetches
# (deploy/kafka/kafka.sh) and chDB in a temp dir; nothing else needs to run.
# Extra arguments go to pytest.
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
.venv/bin/ruff format --check .
echo "tests: mypy" >&2
.venv/bin/mypy
echo "tests: import contracts" >&2
# import-linter reads the code under its installed names through the same symlinks as mypy
PYTHONPATH=.typecheck .venv/bin/lint-imports --no-cache
echo "tests: pytest" >&2
.venv/bin/pytest "$@"
