#!/usr/bin/env bash
# The long GraphQL fuzzing pass (`make fuzz`): at least 5,000 schemathesis cases over every Query and
# Mutation field as anonymous, customer, provider and admin, against a real server on the test stack
# (tables emptied and seeded first), rate limits raised (tests/system/fuzzing.py). Prints the
# cases per role, the 5xx, unmasked and INTERNAL_SERVER_ERROR counts (all must be 0) and the top
# error codes; exits 1 on any finding. Arguments go to tests/system/fuzzing.py (--cases N, --seed S).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/test-env.sh
# Its own cluster and ports, so it can run beside `make test` and `make run`.
export ODIM_DATA_DIR="$PWD/.data/fuzz" ODIM_PG_PORT=54332 ODIM_REDIS_PORT=63802 ODIM_SMTP_SINK_PORT=2537 \
  ODIM_SMTP_PORT=2537 ODIM_PORT=8012 ODIM_PUBLIC_BASE_URL=http://127.0.0.1:8012 \
  ODIM_DATABASE_URL=postgresql+asyncpg://odim@127.0.0.1:54332/odim ODIM_REDIS_URL=redis://127.0.0.1:63802/0
# Access tokens live 15 minutes; the pass may run longer than that.
export ODIM_JWT_TTL_SECONDS="${ODIM_JWT_TTL_SECONDS:-7200}"

cleanup() { uv run odim services down >/dev/null 2>&1 || true; }
trap cleanup EXIT

uv run odim services up --fast
uv run odim migrate
mkdir -p "$ODIM_DATA_DIR"
echo "--- fuzzing (server log: $ODIM_DATA_DIR/fuzz-server.log)"
uv run python -m tests.system.fuzzing --server-log "$ODIM_DATA_DIR/fuzz-server.log" "$@"
