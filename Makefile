# Two commands: `make run` (everything, locally) and `make test` (the whole suite).
.PHONY: bootstrap run test schema docs lint bench bench-payments bench-bookings bench-discovery bench-exports bench-fanout seed-large stop fuzz

bootstrap:  ## install Debian packages and Python dependencies (only what is missing)
	bash scripts/bootstrap.sh

run: bootstrap  ## services + migrations + demo seed (once) + API, worker and scheduler; Ctrl-C stops all
	uv run odim dev

test: bootstrap  ## the whole test suite against its own services; nothing left running
	bash scripts/test.sh -q

schema:  ## export the GraphQL schema to schema.graphql (commit it)
	uv run strawberry export-schema schema:schema --output schema.graphql

docs:  ## build the documentation site (MkDocs Material) into site/; --strict: a broken link fails
	uv run mkdocs build --strict --site-dir site

lint:
	uv run ruff check .
	uv run lint-imports

bench:  ## geosearch benchmark on 1,000,000 providers (dev stack)
	uv run odim services up
	uv run odim migrate
	command -v wrk >/dev/null || { S=$$([ "$$(id -u)" -eq 0 ] || echo sudo); $$S apt-get update -qq && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	uv run python bench/geosearch.py --server-workers 2 $(BENCH_ARGS)

bench-payments:  ## payments benchmark: purchases + sandbox webhooks end to end, 100 clients, vs. in-process (dev stack)
	uv run odim services up
	uv run odim migrate
	uv run python bench/payments.py $(BENCH_ARGS)

bench-bookings:  ## bookings benchmark: holds by 100 customers over 1,000 providers vs. raw INSERTs, and the 1,000-way race (dev stack)
	uv run odim services up
	uv run odim migrate
	uv run python bench/bookings.py $(BENCH_ARGS)

bench-discovery:  ## discovery benchmark: ranked searchProviders cold vs. warm cache, and uncached ranking vs. plain KNN, 10,000 providers (dev stack)
	uv run odim services up
	uv run odim migrate
	uv run python bench/discovery.py $(BENCH_ARGS)

bench-exports:  ## export benchmark: streamed CSV vs. load-everything, 1,000,000 journal-shaped rows, time and peak memory (dev stack)
	uv run odim services up
	uv run odim migrate
	uv run python bench/exports.py $(BENCH_ARGS)

bench-fanout:  ## fan-out benchmark: 1,000 WebSocket subscribers on one conversation, 20 messages, shared vs. naive execution (dev stack)
	uv run odim services up
	uv run odim migrate
	uv run python bench/fanout.py $(BENCH_ARGS)

fuzz: bootstrap  ## GraphQL fuzzing: >= 5,000 schemathesis cases as anonymous, customer, provider and admin on the test stack; 0 5xx, 0 unmasked errors (FUZZ_ARGS="--cases 20000 --seed 7")
	bash scripts/fuzz.sh $(FUZZ_ARGS)

stop:  ## stop the dev services if `make run` was killed hard
	uv run odim services down
