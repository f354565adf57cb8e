"""Financial reports (domain/operations/reports.py, Query.dailyRevenue ... affiliateCommissions): every total
checked against direct sums over the ledger entries, one statement per report, admin only."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from domain.money import ledger
from domain.money import payout as payout_domain
from domain.operations import reports
from domain.orders import dispute
from domain.orders import payment as payment_domain
from domain.orders import service_request as sr_domain
from domain.orders.service_request import purchase_service
from models import Payment
from models.db import session_scope
from resolvers.ids import encode_id
from tests.money.test_payout import (
    CUSTOMER,
    add_destination,
    admin_user,
    provider_with_account,
)
from tests.support.contracts import accept_order
from tests.support.factories import make_affiliate, make_service, make_user, token_for
from tests.support.graphql_client import gql
from tests.support.money import clean_money_tables  # noqa: F401  (autouse fixture)
from tests.support.statements import count_statements

DAY = timedelta(days=1)


async def completed(provider_id: int, admin, *, affiliate_code: str | None = None) -> int:
    """A guest order of 10,000 XAF (10% commission, 10% guest surcharge: the customer pays 11,000),
    paid, assigned to ``provider_id``, contract accepted and completed (escrow released)."""
    svc, tiers = await make_service(name=f"Leak repair {secrets.token_hex(3)}", prices={"XAF": 10000})
    async with session_scope() as s:
        bought = await purchase_service(s, service_id=svc.id, tier_id=tiers[0].id, customer=CUSTOMER, user=None,
                                        affiliate_code=affiliate_code)
    request_id = bought.service_request.id
    async with session_scope() as s:
        payment = await s.scalar(select(Payment).where(Payment.id == bought.payment.id).with_for_update())
        assert await payment_domain.apply_payment_status(
            s, payment, "succeeded", amount_minor=payment.amount_minor, currency=payment.currency,
            event_id=f"evt_{secrets.token_hex(8)}") == "completed"
    async with session_scope() as s:
        await sr_domain.assign_provider(s, request_id, provider_id, actor=admin)
    await accept_order(request_id)
    async with session_scope() as s:
        await sr_domain.update_status(s, request_id, "in_progress", actor=admin)
        await sr_domain.update_status(s, request_id, "completed", actor=admin)
    return request_id


async def ledger_sum(account_kind: str, *, tx_kinds: tuple[str, ...] | None = None, owner_id: int | None = None) -> int:
    """Sum of the ledger entries on accounts of ``account_kind`` (optionally of transactions of
    ``tx_kinds`` and one owner): the figure a report must agree with."""
    sql = ("SELECT COALESCE(SUM(e.amount_minor), 0) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
           "JOIN ledger_transactions t ON t.id = e.transaction_id WHERE a.kind = :k")
    params: dict = {"k": account_kind}
    if tx_kinds is not None:
        sql += " AND t.kind = ANY(:tx)"
        params["tx"] = list(tx_kinds)
    if owner_id is not None:
        sql += " AND a.owner_id = :o"
        params["o"] = owner_id
    async with session_scope() as s:
        return int(await s.scalar(text(sql), params))


async def world():
    """Two orders paid out, one partly refunded by a dispute, one under an open dispute, one with an
    affiliate: every kind of money movement the reports read."""
    admin = await admin_user()
    provider, _ = await provider_with_account()
    await add_destination(provider.id)
    await completed(provider.id, admin)
    await completed(provider.id, admin)
    assert await payout_domain.run_payouts() == 1
    [payout_id] = [p.id for p in await payout_domain_payouts()]
    assert await payout_domain.send_payout(payout_id) == "paid"
    refunded = await completed(provider.id, admin)
    still_open = await completed(provider.id, admin)
    await make_affiliate("DLA-PARTNER", commission_bps=500)
    await completed(provider.id, admin, affiliate_code="DLA-PARTNER")
    async with session_scope() as s:
        d = await dispute.open_dispute(s, refunded, actor=admin, reason="The leak came back.")
    async with session_scope() as s:
        await dispute.resolve_dispute(s, d.id, actor=admin, resolution="refund_partial", refund_minor=3000, note="Half")
    async with session_scope() as s:
        await dispute.open_dispute(s, still_open, actor=admin, reason="Tiles broken.")
    return admin, provider


async def payout_domain_payouts():
    from tests.money.test_payout import payouts

    return await payouts()


def period() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - DAY, now + DAY


async def test_every_report_agrees_with_the_ledger():
    # given a world with releases, a payout, a partial refund, an open dispute and an affiliate
    _, provider = await world()
    start, end = period()
    async with session_scope() as s:
        # when an operator reads each report, each in exactly one statement
        with count_statements() as statements:
            revenue = await reports.daily_revenue(s, start, end)
            payouts = await reports.payout_report(s, start, end)
            disputes = await reports.dispute_report(s, start, end)
            earnings = await reports.provider_earnings(s, start, end)
            affiliates = await reports.affiliate_commissions(s, start, end)
        assert len(statements) == 5
        assert (await ledger.verify(s)).ok
    # then revenue: 5 releases of 1,000 commission + 1,000 guest surcharge, and the ledger's net
    [day] = revenue
    assert (day.currency, day.released_minor, day.commission_minor, day.guest_surcharge_minor) == ("XAF", 10000, 5000, 5000)
    assert day.released_minor == await ledger_sum("platform_revenue", tx_kinds=("escrow_released",))
    assert day.net_minor == await ledger_sum("platform_revenue")
    assert day.affiliate_commissions_minor == await ledger_sum("affiliate_payable") > 0
    assert day.refunds_minor == -await ledger_sum("platform_revenue", tx_kinds=("refund_requested", "refund_sent"))
    assert day.net_minor == day.released_minor - day.affiliate_commissions_minor - day.refunds_minor + day.other_minor
    # payouts: one paid payout of 18,000, settled, and the ledger moved the same money
    assert [(x.currency, x.status, x.reconciliation, x.count, x.amount_minor) for x in payouts.lines] == [
        ("XAF", "paid", "settled", 1, 18000)]
    [moved] = payouts.ledger
    assert (moved.sent_minor, moved.paid_minor, moved.returned_minor, moved.in_transit_now_minor) == (18000, 18000, 0, 0)
    assert moved.paid_minor == -await ledger_sum("payout_in_transit", tx_kinds=("payout_paid",))
    # disputes: one open, one settled by a 3,000 partial refund the ledger holds as owed to the customer
    assert [(x.currency, x.status, x.resolution, x.count, x.at_stake_minor, x.refunded_minor) for x in disputes] == [
        ("XAF", "open", None, 1, 11000, 0), ("XAF", "resolved", "refund_partial", 1, 11000, 3000)]
    assert 3000 == await ledger_sum("refunds_payable", tx_kinds=("refund_requested",))
    # provider earnings: 5 x 9,000 earned, 18,000 paid out, the rest payable now (less what the refund took)
    [mine] = earnings
    assert (mine.provider_id, mine.earned_minor, mine.paid_out_minor) == (provider.id, 45000, 18000)
    assert mine.refunded_minor == -await ledger_sum("provider_payable", tx_kinds=("refund_requested",), owner_id=provider.id)
    assert mine.payable_now_minor == await ledger_sum("provider_payable", owner_id=provider.id)
    assert mine.payable_now_minor == mine.earned_minor - mine.refunded_minor - mine.paid_out_minor
    # affiliates: 5% of the affiliate's order
    [partner] = affiliates
    assert (partner.code, partner.currency, partner.reversed_minor) == ("DLA-PARTNER", "XAF", 0)
    assert partner.earned_minor == partner.net_minor == await ledger_sum("affiliate_payable") == day.affiliate_commissions_minor


async def test_a_period_outside_the_movements_reports_nothing():
    await world()
    start, end = period()
    async with session_scope() as s:
        assert await reports.daily_revenue(s, end, end + DAY) == []
        assert (await reports.payout_report(s, end, end + DAY)).lines == []
        assert await reports.dispute_report(s, start - 3 * DAY, start) == []
        assert await reports.affiliate_commissions(s, end, end + DAY) == []


REVENUE = """query($from: DateTime!, $to: DateTime!) { dailyRevenue(from: $from, to: $to) {
  day currency commission { amountMinor } guestSurcharge { amountMinor } net { amountMinor formatted } } }"""
EARNINGS = """query($from: DateTime!, $to: DateTime!, $p: ID) { providerEarnings(from: $from, to: $to, providerId: $p) {
  providerId earned { amountMinor } paidOut { amountMinor } } }"""


async def test_admins_read_reports_over_graphql_others_are_refused_and_bad_periods_are_typed(api_client):
    # given the world and an admin (MFA) and a customer
    _, provider = await world()
    admin = await token_for(await make_user("ops2@odim.local", role="admin"))
    customer = await token_for(await make_user("ada@example.cm"))
    start, end = period()
    variables = {"from": start.isoformat(), "to": end.isoformat()}
    # when the admin asks: figures come back
    body = await gql(api_client, REVENUE, variables, token=admin)
    [day] = body["data"]["dailyRevenue"]
    assert (day["currency"], day["commission"], day["guestSurcharge"]) == ("XAF", {"amountMinor": 5000}, {"amountMinor": 5000})
    body = await gql(api_client, EARNINGS, {**variables, "p": encode_id("Provider", provider.id)}, token=admin)
    assert body["data"]["providerEarnings"] == [{"providerId": encode_id("Provider", provider.id),
                                                 "earned": {"amountMinor": 45000}, "paidOut": {"amountMinor": 18000}}]
    # then a customer is refused, and a reversed period is a typed error
    body = await gql(api_client, REVENUE, variables, token=customer)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    body = await gql(api_client, REVENUE, {"from": end.isoformat(), "to": start.isoformat()}, token=admin)
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [("INVALID_PERIOD", "from")]


# --- the journal and payout exports (domain/operations/exports.py) ------------------------------------------------

async def test_the_journal_export_rebuilds_every_balance_and_the_payout_export_matches_the_report(tmp_path):
    import asyncio
    import csv
    import io
    import subprocess
    import sys
    from urllib.parse import urlencode

    from domain.operations import exports
    from models import LedgerAccount, LedgerEntry
    from tests.shared.test_audit import ROOT, asgi_get, rows

    # given the world of the reports, and an admin
    await world()
    token = await token_for(await make_user("ops@odim.local", role="admin"))
    start, end = period()
    # when the admin downloads the journal and the payouts of the period
    query = urlencode({"from": start.isoformat(), "to": end.isoformat(), "currency": "xaf"})
    status, _, chunks = await asgi_get("/admin/ledger.csv", query, token)
    journal = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    p_status, _, p_chunks = await asgi_get("/admin/payouts.csv", "", token)
    payouts = list(csv.DictReader(io.StringIO(b"".join(p_chunks).decode())))
    # then every entry is there once, in posting order, and every transaction sums to zero
    assert (status, p_status) == (200, 200)
    async with session_scope() as s:
        entries = await s.scalar(select(text("count(*)")).select_from(LedgerEntry))
        balances = {a.key: a.balance_minor for a in (await s.scalars(select(LedgerAccount))).all()}
    assert len(journal) == entries > 0
    assert [int(r["entry_id"]) for r in journal] == sorted(int(r["entry_id"]) for r in journal)
    per_transaction: dict[str, int] = {}
    for r in journal:
        per_transaction[r["transaction_id"]] = per_transaction.get(r["transaction_id"], 0) + int(r["amount_minor"])
    assert set(per_transaction.values()) == {0}
    # and summing the file per account rebuilds every kept balance; its last row per account agrees
    rebuilt: dict[str, int] = {}
    last: dict[str, int] = {}
    for r in journal:
        rebuilt[r["account_key"]] = rebuilt.get(r["account_key"], 0) + int(r["amount_minor"])
        last[r["account_key"]] = int(r["balance_after_minor"])
    assert rebuilt == last == {k: v for k, v in balances.items() if k in rebuilt}
    assert sum(int(r["amount_minor"]) for r in journal if r["account_kind"] == "platform_revenue") == await ledger_sum(
        "platform_revenue")
    assert {r["order_reference"] != "" for r in journal if r["transaction_kind"] == "escrow_released"} == {True}
    # the payout export holds the one paid payout of the report, without its destination
    assert [(p["currency"], p["status"], p["amount_minor"], p["gateway_id"] != "") for p in payouts] == [
        ("XAF", "paid", "18000", True)]
    assert "destination" not in payouts[0]
    # both exports are audited with their filters
    [audited] = await rows(action="admin.exportLedger")
    assert audited.details["filter"]["currency"] == "XAF"
    assert len(await rows(action="admin.exportPayouts")) == 1
    # and the CLI writes the same journal as the API
    out = tmp_path / "ledger.csv"
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "cli", "export", "ledger", "--out", str(out), "--from", start.isoformat(),
                         "--to", end.isoformat(), "--currency", "XAF"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{entries} row(s)" in done.stdout and out.read_bytes() == b"".join(chunks)
    # a period before everything exports the header only, in batches that never hold the table
    async with session_scope() as s:
        assert await exports.count_rows(s, exports.ledger_rows(exports.PeriodFilter(end=start))) == 0
    batches: list[int] = []
    streamed = [c async for c in exports.ledger_csv(exports.PeriodFilter(), batch_rows=5, on_rows=batches.append)]
    assert sum(batches) == entries and max(batches) == 5 and len(streamed) == len(batches) + 1


async def test_the_journal_and_payout_exports_refuse_strangers_and_bad_filters():
    from tests.shared.test_audit import asgi_get, rows

    customer = await token_for(await make_user("ada@example.cm"))
    admin = await token_for(await make_user("ops@odim.local", role="admin"))
    for path in ("/admin/ledger.csv", "/admin/payouts.csv"):
        assert (await asgi_get(path, "", None))[0] == 401
        assert (await asgi_get(path, "", customer))[0] == 403
        assert (await asgi_get(path, "currency=euro", admin))[0] == 400
        assert (await asgi_get(path, "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", admin))[0] == 400
        assert (await asgi_get(path, "from=yesterday", admin))[0] == 400
    assert len(await rows(action="authz.denied")) == 4
    assert await rows(action="admin.exportLedger") == await rows(action="admin.exportPayouts") == []
