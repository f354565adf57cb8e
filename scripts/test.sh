#!/usr/bin/env bash
# The whole test suite against its own local services (ports of scripts/test-env.sh), then
# everything stopped again, pass or fail.
#
# The static checks (ruff, import-linter, secrets, the committed schema and generated files, the docs
# build) run beside pytest; pytest runs on ODIM_TEST_WORKERS processes (pytest-xdist, default 4), each
# with a stack of its own (tests/conftest.py). Arguments go to pytest (e.g. `-n 0 -k chat`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/test-env.sh

checks_log="$(mktemp)"
cleanup() {
  uv run odim services down >/dev/null 2>&1 || true
  for d in "$ODIM_DATA_DIR"/gw*; do [ -d "$d" ] && ODIM_DATA_DIR="$d" uv run odim services down >/dev/null 2>&1 || true; done
  rm -f "$checks_log"
}
trap cleanup EXIT

uv run odim services reset --yes >/dev/null 2>&1 || true   # a fresh cluster every run
uv run odim services up --fast
uv run odim migrate

static_checks() {
  set -e
  echo "--- ruff"
  uv run ruff check .
  echo "--- import-linter (layers and contexts of docs/architecture.md)"
  uv run lint-imports
  echo "--- detect-secrets: no new key-like strings (scripts/check_secrets.py, .secrets.baseline)"
  uv run python scripts/check_secrets.py
  echo "--- schema.graphql is up to date"
  uv run strawberry export-schema schema:schema --output "$checks_log.graphql" >/dev/null
  if ! diff -u schema.graphql "$checks_log.graphql"; then
    echo "schema.graphql differs from the code: run 'make schema' and commit it" >&2; exit 1
  fi
  rm -f "$checks_log.graphql"
  echo "--- .env.example lists every setting"
  uv run python scripts/env_example.py --check
  echo "--- docs/state-machines.md is generated from the code"
  uv run python scripts/state_machines.py --check
  echo "--- docs build (mkdocs --strict: no broken links)"
  NO_MKDOCS_2_WARNING=1 uv run mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
  echo "--- static checks passed"
}
static_checks > "$checks_log" 2>&1 &
checks=$!

echo "--- pytest"
status=0
uv run pytest -n "${ODIM_TEST_WORKERS:-4}" --dist worksteal "$@" || status=$?

echo "--- static checks (run beside pytest)"
checks_status=0
wait "$checks" || checks_status=$?
cat "$checks_log"
if [ "$checks_status" -ne 0 ]; then echo "static checks failed" >&2; exit "$checks_status"; fi
exit "$status"
