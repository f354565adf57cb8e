"""The ``odim`` command: local services, migrations, seed data, and the API, worker and scheduler."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

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
    from domain import outbox
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
    from domain import payout

    made = _run_with_workers(payout.run_payouts)
    console.print(f"{made} payout(s) created; the worker sends them")


@money_app.command("reconcile")
def money_reconcile(older_than: int = typer.Option(None, help="Seconds pending before asking (default: setting).")) -> None:
    """Ask the gateways about every pending payment, refund and payout, and apply their answers."""
    from domain import reconciliation

    run_id = _run_with_workers(lambda: reconciliation.run(older_than_seconds=older_than))
    console.print(f"reconciliation run {run_id} done; read it with the reconciliationRuns query")


@money_app.command("release-due")
def money_release_due() -> None:
    """Release the escrow of completed orders whose grace period passed with no dispute."""
    from domain import escrow

    released = _run_with_workers(escrow.release_due_orders)
    console.print(f"{released} order(s) released")


@money_app.command("check")
def money_check() -> None:
    """Audit the ledger: zero-sum per currency, kept balances = entries, no forbidden negatives;
    prints the trial balance. Exits 1 when something is wrong."""
    from domain import ledger
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


@app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., prompt=True),
    full_name: str = typer.Option("Operator", prompt=True),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Create an operator (admin) account."""
    from domain import user as user_domain
    from domain.errors import DomainError
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
