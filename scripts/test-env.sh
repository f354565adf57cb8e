# Settings for the test stack: its own data dir and ports, so it runs beside `make run`.
export ODIM_ENVIRONMENT=test
export ODIM_DATA_DIR="${ODIM_DATA_DIR:-$PWD/.data/test}"
# Ports may be overridden (ODIM_TEST_PORT_BASE) to run two checkouts' suites at once.
base="${ODIM_TEST_PORT_BASE:-0}"
export ODIM_PG_PORT=$((54330 + base))
export ODIM_REDIS_PORT=$((63800 + base))
export ODIM_SMTP_SINK_PORT=$((2535 + base))
export ODIM_SMTP_PORT=$ODIM_SMTP_SINK_PORT
export ODIM_DATABASE_URL=postgresql+asyncpg://odim@127.0.0.1:${ODIM_PG_PORT}/odim
export ODIM_REDIS_URL=redis://127.0.0.1:${ODIM_REDIS_PORT}/0
export ODIM_PORT=$((8010 + base))
export ODIM_PUBLIC_BASE_URL=http://127.0.0.1:${ODIM_PORT}
export ODIM_ACTOR_MIN_BACKOFF_MS=50
export ODIM_ACTOR_MAX_BACKOFF_MS=500
# Every in-process test client is 127.0.0.1 and tests reuse a few accounts: the authorisation matrix
# alone sends ~700 requests in one test, and purchase tests buy dozens of times as one customer, far
# over the defaults (100/minute per IP, 20 purchases/minute per account). tests/system/test_abuse_limits.py
# sets low limits itself.
export ODIM_RATE_LIMIT_PUBLIC=1000000/minute
export ODIM_RATE_LIMIT_PURCHASE=1000000/minute
