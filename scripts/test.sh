#!/usr/bin/env bash
# Run every check: lint, types, and the whole test suite (unit and integration, on the real
# embedded broker, SQLite and the local PostgreSQL). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# The integration tests need PostgreSQL (NPSLOOP_TEST_POSTGRES_URL, default the local server).
if [ -z "${NPSLOOP_TEST_POSTGRES_URL:-}" ] && command -v pg_ctlcluster >/dev/null \
   && ! (command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432); then
  echo "test: starting the local PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi

echo "test: ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null
echo "test: mypy"
.venv/bin/mypy
echo "test: pytest"
.venv/bin/pytest --durations=15 "$@"
