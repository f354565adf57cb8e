# Settings for the test stack: its own data dir and ports, so it runs beside `make run`.
export ODIM_ENVIRONMENT=test
export ODIM_DATA_DIR="${ODIM_DATA_DIR:-$PWD/.data/test}"
export ODIM_PG_PORT=54330
export ODIM_REDIS_PORT=63800
export ODIM_SMTP_SINK_PORT=2535
export ODIM_SMTP_PORT=2535
export ODIM_DATABASE_URL=postgresql+asyncpg://odim@127.0.0.1:54330/odim
export ODIM_REDIS_URL=redis://127.0.0.1:63800/0
export ODIM_PORT=8010
export ODIM_PUBLIC_BASE_URL=http://127.0.0.1:8010
export ODIM_ACTOR_MIN_BACKOFF_MS=50
export ODIM_ACTOR_MAX_BACKOFF_MS=500
# Every in-process test client is 127.0.0.1 and tests reuse a few accounts: the authorisation matrix
# alone sends ~700 requests in one test, and purchase tests buy dozens of times as one customer, far
# over the defaults (100/minute per IP, 20 purchases/minute per account). tests/test_abuse_limits.py
# sets low limits itself.
export ODIM_RATE_LIMIT_PUBLIC=1000000/minute
export ODIM_RATE_LIMIT_PURCHASE=1000000/minute
