"""The ``odim`` command: local services, migrations, seed data, and the API, worker and scheduler."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from settings import PROJECT_ROOT, get_settings

app = typer.Typer(help="Odim: marketplace backend. `odim dev` runs everything locally.", no_args_is_help=True)
services_app = typer.Typer(help="Project-local PostgreSQL+PostGIS, Redis and SMTP sink under .data/.")
app.add_typer(services_app, name="services")
console = Console()


@services_app.command("up")
def services_up(fast: bool = typer.Option(False, help="No fsync (for throwaway test clusters).")) -> None:
    """Start the local services (each only if not already running)."""
    from devstack import services

    services.up(fast=fast)
    s = get_settings()
    console.print(f"[green]up[/green]: PostgreSQL :{s.pg_port}, Redis :{s.redis_port}, SMTP sink :{s.smtp_sink_port} "
                  f"(mail in {s.data_dir}/mail)")


@services_app.command("down")
def services_down() -> None:
    """Stop the local services."""
    from devstack import services

    services.down()
    console.print("[yellow]down[/yellow]")


@services_app.command("status")
def services_status() -> None:
    from devstack import services

    for name, ok in services.status().items():
        console.print(f"{name:12} {'[green]up[/green]' if ok else '[red]down[/red]'}")


@services_app.command("reset")
def services_reset(yes: bool = typer.Option(False, "--yes", help="Confirm deleting all local data.")) -> None:
    """Stop the services and delete .data/ (database included)."""
    from devstack import services

    if not yes:
        raise typer.BadParameter("pass --yes to delete all local data")
    services.reset()


@app.command()
def migrate(revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision``."""
    from alembic import command
    from alembic.config import Config

    command.upgrade(Config(str(PROJECT_ROOT / "alembic.ini")), revision)


@app.command()
def seed(providers: int = typer.Option(0, help="Also add this many synthetic providers (COPY), e.g. 1000000.")) -> None:
    """Seed the demo marketplace from real places (once), optionally plus bulk providers."""
    from devstack import seed as seed_module
    from models.db import dispose_engine

    async def run() -> dict:
        try:
            summary = await seed_module.seed_demo()
            if providers > 0:
                with Progress(TextColumn("bulk providers"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                              console=console) as progress:
                    task = progress.add_task("copy", total=providers)
                    await seed_module.seed_bulk_providers(
                        providers, progress=lambda done, total: progress.update(task, completed=done)
                    )
            return summary
        finally:
            await dispose_engine()

    summary = asyncio.run(run())
    if summary.get("skipped"):
        console.print("demo data already present (seed runs once); log in with the accounts printed the first time "
                      "or create an admin with `odim create-admin`")
        return
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    counts = summary.get("counts", {})
    console.print(f"[green]seeded[/green] {counts}")
    console.print(f"admin:    {summary['admin_email']} / {summary.get('admin_password') or '(existing password)'}")
    console.print(f"customer: {summary['customer_email']} / {summary.get('customer_password')}")
    console.print(f"provider: {', '.join(summary.get('provider_emails', []))} / {summary.get('provider_password')}")
    console.print(f"affiliate codes: {', '.join(summary.get('affiliate_codes', []))}")
    credentials = get_settings().data_dir / "demo-credentials.txt"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_text(
        f"admin {summary['admin_email']} {summary.get('admin_password')}\n"
        f"customer {summary['customer_email']} {summary.get('customer_password')}\n"
    )
    os.chmod(credentials, 0o600)
    console.print(f"(also written to {credentials})")


money_app = typer.Typer(help="Money operations the scheduler also runs: payouts, reconciliation, ledger audit.")
app.add_typer(money_app, name="money")


def _run_with_workers(coro_factory):
    """Run an async money operation in this process, with the Dramatiq broker configured so the
    jobs it writes to the outbox are dispatched (a worker must be running to execute them)."""
    import workers  # noqa: F401
    from domain.shared import outbox
    from models.db import dispose_engine

    async def run():
        try:
            result = await coro_factory()
            await outbox.relay()
            return result
        finally:
            await dispose_engine()

    return asyncio.run(run())


@money_app.command("payouts")
def money_payouts() -> None:
    """Batch every provider's payable earnings into payouts now (the scheduler does it hourly)."""
    from domain.money import payout

    made = _run_with_workers(payout.run_payouts)
    console.print(f"{made} payout(s) created; the worker sends them")


@money_app.command("reconcile")
def money_reconcile(older_than: int = typer.Option(None, help="Seconds pending before asking (default: setting).")) -> None:
    """Ask the gateways about every pending payment, refund and payout, and apply their answers."""
    from domain.orders import reconciliation

    run_id = _run_with_workers(lambda: reconciliation.run(older_than_seconds=older_than))
    console.print(f"reconciliation run {run_id} done; read it with the reconciliationRuns query")


@money_app.command("release-due")
def money_release_due() -> None:
    """Release the escrow of completed orders whose grace period passed with no dispute."""
    from domain.money import escrow

    released = _run_with_workers(escrow.release_due_orders)
    console.print(f"{released} order(s) released")


@money_app.command("check")
def money_check() -> None:
    """Audit the ledger: zero-sum per currency, kept balances = entries, no forbidden negatives;
    prints the trial balance. Exits 1 when something is wrong."""
    from domain.money import ledger
    from models.db import session_scope

    async def audit():
        async with session_scope() as session:
            return await ledger.verify(session), await ledger.trial_balance(session)

    check, lines = _run_with_workers(audit)
    for line in lines:
        console.print(f"{line.currency} {line.kind:<20} accounts={line.accounts:<6} balance={line.balance_minor}")
    console.print(f"per-currency sums: {check.currency_sums or '{}'}")
    if not check.ok:
        console.print(f"[red]ledger check failed[/red]: drifted={check.drifted_accounts} negative={check.negative_accounts}")
        raise typer.Exit(1)
    console.print("[green]ledger balanced[/green]")


bookings_app = typer.Typer(help="Booking operations the scheduler also runs.")
app.add_typer(bookings_app, name="bookings")


@bookings_app.command("sweep")
def bookings_sweep() -> None:
    """Run the booking timers now: expire holds and unanswered visits, auto-complete, escalate."""
    from workers import booking as booking_worker

    counts = _run_with_workers(booking_worker.run_timers)
    console.print(", ".join(f"{name.replace('_', ' ')}: {n}" for name, n in counts.items()))


reviews_app = typer.Typer(help="Blind reviews: what the scheduler also runs.")
app.add_typer(reviews_app, name="reviews")


@reviews_app.command("publish-due")
def reviews_publish_due() -> None:
    """Publish now every blind review whose review window closed (rating aggregates and flags follow)."""
    from domain.reviews import review as review_domain

    async def run() -> int:
        total = 0
        while (n := await review_domain.publish_due()) > 0:
            total += n
        return total

    console.print(f"reviews published: {_run_with_workers(run)}")


discovery_app = typer.Typer(help="Ranked discovery: provider statistics the ranking reads.")
app.add_typer(discovery_app, name="discovery")


@discovery_app.command("refresh-stats")
def discovery_refresh_stats() -> None:
    """Recompute completed jobs, provider-caused cancellations and median response time of every
    provider from the status histories (the scheduler does it every discovery_stats_refresh_seconds)."""
    from domain.providers import discovery
    from models.db import dispose_engine, session_scope

    async def run() -> int:
        try:
            async with session_scope() as session:
                return await discovery.refresh_stats(session)
        finally:
            await dispose_engine()

    console.print(f"providers whose statistics changed: {asyncio.run(run())}")


export_app = typer.Typer(help="Streamed CSV exports for operators, with a progress bar.")
app.add_typer(export_app, name="export")


@export_app.command("requests")
def export_requests(
    out: str = typer.Option(..., "--out", help="CSV file to write (overwritten)."),
    status: str | None = typer.Option(None, help="e.g. COMPLETED."),
    service_id: str | None = typer.Option(None, "--service-id", help="Service global or raw id."),
    provider_id: str | None = typer.Option(None, "--provider-id", help="Assigned provider, global or raw id."),
    since: str | None = typer.Option(None, "--from", help="Created at or after (ISO 8601 with a zone)."),
    until: str | None = typer.Option(None, "--to", help="Created before (ISO 8601 with a zone)."),
) -> None:
    """Export the admin request table as CSV, oldest first: the same rows and columns as GET
    /admin/service-requests.csv, streamed from a server-side cursor. Audited (admin.exportServiceRequests,
    actor role cli)."""
    from domain.operations import exports
    from domain.shared.errors import DomainError
    from models.db import session_scope
    from resolvers.operations.exports import request_filter_from_query

    params = {"status": status, "serviceId": service_id, "assignedProviderId": provider_id, "from": since,
              "to": until}
    try:
        f = request_filter_from_query({k: v for k, v in params.items() if v})
    except DomainError as exc:
        raise typer.BadParameter(exc.message) from None

    async def total() -> int:
        async with session_scope() as session:
            return await exports.count_service_requests(session, f)

    _write_csv_export(
        out, label="requests", total=total,
        chunks=lambda advance: exports.service_requests_csv(
            f, batch_rows=get_settings().audit_export_batch_rows, on_rows=advance),
        audit_action="admin.exportServiceRequests",
        audit_filter={k: str(v) for k, v in vars(f).items() if v is not None},
    )


def _export_period(kind: str, out: str, since: str | None, until: str | None, currency: str | None) -> None:
    """The ledger and payout exports: the same filter parsing as their HTTP endpoints."""
    from domain.operations import exports
    from domain.shared.errors import DomainError
    from models.db import session_scope
    from resolvers.operations.exports import period_filter_from_query

    try:
        f = period_filter_from_query({k: v for k, v in {"from": since, "to": until, "currency": currency}.items() if v})
    except DomainError as exc:
        raise typer.BadParameter(exc.message) from None
    rows, stream, action = {
        "ledger": (exports.ledger_rows, exports.ledger_csv, "admin.exportLedger"),
        "payouts": (exports.payout_rows, exports.payouts_csv, "admin.exportPayouts"),
    }[kind]

    async def total() -> int:
        async with session_scope() as session:
            return await exports.count_rows(session, rows(f))

    _write_csv_export(
        out, label=kind, total=total,
        chunks=lambda advance: stream(f, batch_rows=get_settings().audit_export_batch_rows, on_rows=advance),
        audit_action=action, audit_filter={k: str(v) for k, v in vars(f).items() if v is not None},
    )


_OUT = typer.Option(..., "--out", help="CSV file to write (overwritten).")
_FROM = typer.Option(None, "--from", help="At or after (ISO 8601 with a zone).")
_TO = typer.Option(None, "--to", help="Before (ISO 8601 with a zone).")
_CURRENCY = typer.Option(None, help="ISO 4217 code, e.g. XAF.")


@export_app.command("ledger")
def export_ledger(out: str = _OUT, since: str | None = _FROM, until: str | None = _TO,
                  currency: str | None = _CURRENCY) -> None:
    """Export the journal as CSV: one row per ledger entry (posting time, transaction, order, account,
    signed amount, balance after), in posting order; the same rows as GET /admin/ledger.csv. Audited
    (admin.exportLedger, actor role cli)."""
    _export_period("ledger", out, since, until, currency)


@export_app.command("payouts")
def export_payouts(out: str = _OUT, since: str | None = _FROM, until: str | None = _TO,
                   currency: str | None = _CURRENCY) -> None:
    """Export payouts created in the period as CSV (status, gateway reference, attempts, sent and
    settled times); the same rows as GET /admin/payouts.csv. Audited (admin.exportPayouts, actor role cli)."""
    _export_period("payouts", out, since, until, currency)


def _write_csv_export(out: str, *, label: str, total, chunks, audit_action: str, audit_filter: dict) -> None:
    """Write a streamed CSV export to ``out`` with a progress bar: ``total()`` (async) gives the row
    count, ``chunks(advance)`` the CSV chunks (calling ``advance(n)`` per batch); the export is
    audited as ``audit_action`` (actor role cli) before the first row is written."""
    from domain.shared import audit
    from models.db import dispose_engine

    async def run(file) -> int:
        try:
            expected = await total()
            await audit.record_detached(action=audit_action, actor_id=None, actor_role="cli",
                                        details={"filter": audit_filter, "transport": "cli"})
            written = 0
            with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=console) as progress:
                task = progress.add_task("export", total=expected)

                def advance(n: int) -> None:
                    nonlocal written
                    written += n
                    progress.advance(task, n)

                async for chunk in chunks(advance):
                    file.write(chunk)
            return written
        finally:
            await dispose_engine()

    with open(out, "w", newline="", encoding="utf-8") as file:
        written = asyncio.run(run(file))
    console.print(f"[green]{written} row(s)[/green] written to {out}")


audit_app = typer.Typer(help="The append-only audit log.")
app.add_typer(audit_app, name="audit")


@audit_app.command("export")
def audit_export(
    out: str = typer.Option(..., "--out", help="CSV file to write (overwritten)."),
    action: str | None = typer.Option(None, help="Exact action, e.g. admin.refundServiceRequest."),
    action_prefix: str | None = typer.Option(None, "--action-prefix", help="Actions starting with this, e.g. money."),
    actor_id: int | None = typer.Option(None, "--actor-id", help="users.id of the actor."),
    subject_type: str | None = typer.Option(None, "--subject-type"),
    subject_id: str | None = typer.Option(None, "--subject-id"),
    outcome: str | None = typer.Option(None, help="ok, failed or denied."),
    since: str | None = typer.Option(None, "--from", help="ISO 8601 with a zone, inclusive."),
    until: str | None = typer.Option(None, "--to", help="ISO 8601 with a zone, exclusive."),
) -> None:
    """Export audit rows (newest first) as CSV, the same columns as GET /admin/audit.csv, streamed from
    a server-side cursor. The export itself is audited (admin.exportAuditLog, actor role cli)."""
    from datetime import datetime

    from domain.shared import audit
    from models.db import session_scope

    try:
        f = audit.AuditFilter(
            action=action, action_prefix=action_prefix, actor_id=actor_id, subject_type=subject_type,
            subject_id=subject_id, outcome=outcome,
            occurred_from=datetime.fromisoformat(since) if since else None,
            occurred_to=datetime.fromisoformat(until) if until else None,
        )
        f.validate()
    except (ValueError, audit.InvalidAuditFilter) as exc:
        raise typer.BadParameter(str(exc)) from None

    async def total() -> int:
        async with session_scope() as session:
            return await audit.count_entries(session, f)

    _write_csv_export(
        out, label="audit rows", total=total,
        chunks=lambda advance: audit.export_csv(f, batch_rows=get_settings().audit_export_batch_rows, on_rows=advance),
        audit_action="admin.exportAuditLog",
        audit_filter={k: str(v) for k, v in vars(f).items() if v is not None},
    )


keys_app = typer.Typer(help="Encryption keys of personal data at rest (models/crypto.py, domain/operations/privacy.py).")
app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random AES-256 key (base64 of 32 bytes) and how to install it."""
    from datetime import UTC, datetime

    from models.crypto import generate_key

    kid = datetime.now(UTC).strftime("k%Y%m%d%H%M")
    print(generate_key())
    console.print(f"[dim]add it to ODIM_ENCRYPTION_KEYS under a new id (e.g. {kid}), keep the old keys, set "
                  f"ODIM_ENCRYPTION_KEY_ID={kid}, restart, then run `odim keys rotate`[/dim]", highlight=False)


@keys_app.command("rotate")
def keys_rotate(batch_size: int = typer.Option(500, min=1, help="Rows per transaction.")) -> None:
    """Re-encrypt every value not under ODIM_ENCRYPTION_KEY_ID (batched, resumable), then show the key ids still in use."""
    from domain.operations import privacy
    from models.db import dispose_engine

    def progress(column: str, counts) -> None:
        console.print(f"  {column}: {counts.rotated} re-encrypted, {counts.failed} failed", highlight=False)

    async def run():
        try:
            report = await privacy.rotate_keys(batch_size=batch_size, on_batch=progress)
            return report, await privacy.key_ids_in_use()
        finally:
            await dispose_engine()

    report, in_use = asyncio.run(run())
    for column, counts in report.columns.items():
        console.print(f"{column}: {counts.rotated} re-encrypted, {counts.failed} failed", highlight=False)
    rate = report.rotated / report.seconds if report.seconds else 0.0
    console.print(f"total: {report.rotated} re-encrypted under {report.key_id}, {report.failed} failed, "
                  f"{report.seconds:.2f} s ({rate:,.0f} values/s)", highlight=False)
    others = sorted({kid for counts in in_use.values() for kid in counts if kid != report.key_id})
    console.print(f"key ids still in use besides {report.key_id}: {', '.join(others) or 'none'}", highlight=False)
    if report.failed:
        raise typer.Exit(1)


persisted_app = typer.Typer(help="The persisted-query allow-list (ODIM_PERSISTED_QUERIES_ONLY, schema/security.py).")
app.add_typer(persisted_app, name="persisted-queries")


@persisted_app.command("build")
def persisted_queries_build(
    sources: list[Path] = typer.Argument(..., help="Directories (searched for .graphql/.gql) or files"),
    output: Path = typer.Option(Path("persisted-queries.json"), "--output", "-o", help="The JSON file to write"),
) -> None:
    """Write {sha256: query} for every document (each validated against the schema); point
    ODIM_PERSISTED_QUERIES_FILE at the output and set ODIM_PERSISTED_QUERIES_ONLY=true."""
    import json

    from schema.security import build_allow_list

    try:
        allowed = build_allow_list(sources)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    output.write_text(json.dumps(allowed, indent=2, sort_keys=True) + "\n")
    typer.echo(f"{output}: {len(allowed)} persisted queries")


@app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., prompt=True),
    full_name: str = typer.Option("Operator", prompt=True),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Create an operator (admin) account."""
    from domain.identity import user as user_domain
    from domain.shared.errors import DomainError
    from models.db import dispose_engine, session_scope

    async def run() -> None:
        try:
            async with session_scope() as session:
                await user_domain.register(
                    session, email=email, password=password, full_name=full_name, phone=None, role="admin"
                )
        finally:
            await dispose_engine()

    try:
        asyncio.run(run())
    except DomainError as exc:
        console.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from exc
    console.print(f"[green]admin created[/green]: {email}")


@app.command()
def serve(reload: bool = False, workers_count: int = typer.Option(1, "--workers")) -> None:
    """Serve the API with uvicorn on settings.host:port."""
    import uvicorn

    s = get_settings()
    uvicorn.run("server:app", host=s.host, port=s.port, reload=reload, workers=workers_count,
                proxy_headers=True, log_level="info")


@app.command()
def worker(processes: int = 1, threads: int = 8) -> None:
    """Run the Dramatiq worker (payments, notifications, default queues)."""
    os.execvp(sys.executable, [sys.executable, "-m", "dramatiq", "workers", "--processes", str(processes),
                               "--threads", str(threads)])


@app.command()
def scheduler() -> None:
    """Run the scheduler (outbox sweep, re-queue of stalled work). Run exactly one."""
    from workers.scheduler import main

    main()


@app.command()
def dev(seed_data: bool = typer.Option(True, "--seed/--no-seed")) -> None:
    """Everything for local development: services, migrations, demo seed (once), then the API,
    the worker and the scheduler. Ctrl-C stops all of it."""
    from devstack import services

    services.up()
    migrate("head")
    if seed_data:
        seed(providers=0)
    s = get_settings()
    # Each child in its own session: a terminal Ctrl-C reaches only this process, which then stops
    # every child exactly once (Dramatiq treats a second signal as "kill the workers now").
    procs = [
        subprocess.Popen([sys.executable, "-m", "cli", name], cwd=PROJECT_ROOT, start_new_session=True)
        for name in ("serve", "worker", "scheduler")
    ]
    console.print(f"[bold green]Odim is running[/bold green]: GraphiQL at http://{s.host}:{s.port}/graphql — "
                  f"mail lands in {s.data_dir}/mail — Ctrl-C stops everything")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)  # the process only: Dramatiq's master tells its workers
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        services.down()
        console.print("stopped")


if __name__ == "__main__":
    app()
