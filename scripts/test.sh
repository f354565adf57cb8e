#!/usr/bin/env bash
# The whole test suite against its own local services (ports of scripts/test-env.sh), then
# everything stopped again, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/test-env.sh

cleanup() { uv run odim services down >/dev/null 2>&1 || true; }
trap cleanup EXIT

uv run odim services reset --yes >/dev/null 2>&1 || true   # a fresh cluster every run
uv run odim services up --fast
uv run odim migrate
echo "--- ruff"
uv run ruff check .
echo "--- import-linter (layers of docs/architecture.md)"
uv run lint-imports
echo "--- detect-secrets: no new key-like strings (scripts/check_secrets.py, .secrets.baseline)"
uv run python scripts/check_secrets.py
echo "--- schema.graphql is up to date"
uv run strawberry export-schema schema:schema --output /tmp/odim-schema-$$.graphql >/dev/null
if ! diff -u schema.graphql /tmp/odim-schema-$$.graphql; then
  echo "schema.graphql differs from the code: run 'make schema' and commit it" >&2; exit 1
fi
echo "--- .env.example lists every setting"
uv run python scripts/env_example.py --check
echo "--- docs/state-machines.md is generated from the code"
uv run python scripts/state_machines.py --check
echo "--- docs build (mkdocs --strict: no broken links)"
NO_MKDOCS_2_WARNING=1 uv run mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "--- pytest"
uv run pytest "$@"
