"""Export benchmark: the operators' CSV exports stream (domain/shared/audit.py ``stream_csv``, shared by the
audit, request, journal and payout exports) against the naive export that loads every row first, in
one run.

    uv run python bench/exports.py                    # 1,000,000 journal-shaped rows, batches of 500
    uv run python bench/exports.py --rows 200000 --batch-rows 2000
    make bench-exports                                # dev stack up + migrations + this

Against the database of the current settings (the dev stack by default). Nothing is written to the
database: the rows come from ``generate_series`` shaped like ``GET /admin/ledger.csv`` rows
(twelve columns: ids, a timestamp, kinds, an order reference, an account key, a signed amount, a
balance), so the ledger, which is append-only, is not polluted with fake money.

Each mode runs in its own child process, so its peak resident memory (``ru_maxrss``) is its own:

* streamed: ``stream_csv`` (server-side cursor, ``yield_per`` = ``--batch-rows``), each chunk written
  to a file as it comes, as the HTTP endpoint and ``odim export`` do;
* naive: ``(await session.execute(stmt)).all()`` then the same cells written with ``csv.writer``.

Then the real journal export (``domain.exports.ledger_csv``) over whatever ledger the database holds.
Prints rows/s, seconds, peak RSS and the ratios; a JSON copy goes to bench/results/. Figures only:
nothing here asserts a time (docs/conventions.md).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from sqlalchemy import column, select, text

from domain.operations import exports
from domain.shared import audit
from models.db import dispose_engine, session_scope

COLUMNS = exports.LEDGER_CSV_COLUMNS


def journal_like(rows: int):
    """A SELECT of ``rows`` rows with the journal export's columns, computed by PostgreSQL."""
    generated = text(
        "SELECT n AS entry_id, now() - make_interval(secs => n) AS posted_at, n / 2 AS transaction_id,"
        " 'escrow_released' AS transaction_kind, 'ODM-' || lpad(to_hex(n / 4), 8, '0') AS order_reference,"
        " 'provider_payable:' || (n % 1000) || '\\:XAF' AS account_key, 'provider_payable' AS account_kind,"
        " 'Provider' AS owner_type, n % 1000 AS owner_id, 'XAF' AS currency,"
        " (n % 2 * 2 - 1) * 9000 AS amount_minor, n::bigint * 7 AS balance_after_minor"
        " FROM generate_series(1, :rows) AS n"
    ).bindparams(rows=rows).columns(*(column(c) for c in COLUMNS)).subquery("journal")
    return select(generated).order_by(generated.c.entry_id)


async def run_mode(mode: str, rows: int, batch_rows: int) -> dict:
    out = Path(tempfile.mkstemp(suffix=".csv")[1])
    stmt = journal_like(rows)
    started = time.perf_counter()
    try:
        with out.open("w", newline="", encoding="utf-8") as file:
            if mode == "streamed":
                async for chunk in audit.stream_csv(stmt, COLUMNS, batch_rows=batch_rows):
                    file.write(chunk)
            else:
                async with session_scope() as s:
                    everything = (await s.execute(stmt)).all()
                writer = csv.writer(file)
                writer.writerow(COLUMNS)
                for row in everything:
                    writer.writerow([audit.csv_cell(v) for v in row])
        seconds = time.perf_counter() - started
        size = out.stat().st_size
    finally:
        out.unlink(missing_ok=True)
        await dispose_engine()
    return {"mode": mode, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "bytes": size,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


async def real_journal(batch_rows: int) -> dict:
    async with session_scope() as s:
        entries = await exports.count_rows(s, exports.ledger_rows(exports.PeriodFilter()))
    started = time.perf_counter()
    size = 0
    async for chunk in exports.ledger_csv(exports.PeriodFilter(), batch_rows=batch_rows):
        size += len(chunk)
    seconds = time.perf_counter() - started
    await dispose_engine()
    return {"entries": entries, "seconds": seconds, "rows_per_s": entries / seconds if seconds else 0.0, "chars": size}


def child(mode: str, rows: int, batch_rows: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", mode, "--rows", str(rows), "--batch-rows",
                           str(batch_rows)], capture_output=True, text=True, cwd=PROJECT_ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=500)
    parser.add_argument("--child", choices=("streamed", "naive"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(run_mode(args.child, args.rows, args.batch_rows))))
        return
    baseline = child("naive", 1, args.batch_rows)  # an interpreter with the app imported and one row
    streamed = child("streamed", args.rows, args.batch_rows)
    naive = child("naive", args.rows, args.batch_rows)
    journal = asyncio.run(real_journal(args.batch_rows))
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"{args.rows:,} journal-shaped rows ({streamed['bytes'] / 2**20:.0f} MiB of CSV), batches of {args.batch_rows}:")
    print(f"  {'mode':10s} {'seconds':>8s} {'rows/s':>10s} {'peak RSS':>10s}")
    for r in (streamed, naive):
        print(f"  {r['mode']:10s} {r['seconds']:8.2f} {r['rows_per_s']:10,.0f} {r['peak_rss_mib']:7.0f} MiB")
    print(f"  interpreter with the app imported, one row: {baseline['peak_rss_mib']:.0f} MiB")
    grown_streamed = streamed["peak_rss_mib"] - baseline["peak_rss_mib"]
    grown_naive = naive["peak_rss_mib"] - baseline["peak_rss_mib"]
    print(f"  memory above the interpreter: streamed {grown_streamed:.0f} MiB, naive {grown_naive:.0f} MiB "
          f"({grown_naive / max(grown_streamed, 1):.0f}x)")
    print(f"  time naive / streamed: {naive['seconds'] / streamed['seconds']:.2f}x")
    print(f"the real journal export (ledger_csv) over this database's ledger: {journal['entries']:,} entries in "
          f"{journal['seconds'] * 1e3:.0f} ms ({journal['rows_per_s']:,.0f} rows/s)")
    results = PROJECT_ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = {"bench": "exports", "at": stamp, "rows": args.rows, "batch_rows": args.batch_rows,
              "streamed": streamed, "naive": naive, "baseline": baseline, "journal": journal}
    (results / f"exports-{stamp}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
