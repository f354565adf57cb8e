"""The double-entry ledger's own rules, against real PostgreSQL: balanced postings, immutable entries,
non-negative accounts, idempotent keys, deadlock-free concurrent transfers, and the fee arithmetic."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from domain.catalogue import fees
from domain.money import ledger
from domain.orders import locks
from models import LedgerAccount, LedgerEntry, LedgerTransaction
from models.db import session_scope

CLEARING = ledger.gateway_clearing("sandbox", "XAF")
ESCROW = ledger.escrow(1, "XAF")
PAYABLE = ledger.provider_payable(7, "XAF")


async def counts() -> tuple[int, int, int]:
    async with session_scope() as s:
        return (
            await s.scalar(select(func.count()).select_from(LedgerAccount)),
            await s.scalar(select(func.count()).select_from(LedgerTransaction)),
            await s.scalar(select(func.count()).select_from(LedgerEntry)),
        )


async def test_a_balanced_posting_moves_balances_and_records_versioned_entries():
    # when
    async with session_scope() as s:
        txn = await ledger.post(s, "payment_captured", "payment_captured:pay_1", [(CLEARING, -11000), (ESCROW, 11000)])
    # then
    assert txn is not None
    async with session_scope() as s:
        assert await ledger.balance(s, CLEARING) == -11000
        assert await ledger.balance(s, ESCROW) == 11000
        entries = (await s.execute(
            select(LedgerEntry.amount_minor, LedgerEntry.balance_after_minor, LedgerEntry.account_version)
            .order_by(LedgerEntry.id))).all()
        assert [tuple(e) for e in entries] == [(-11000, -11000, 1), (11000, 11000, 1)]
        assert (await ledger.verify(s)).ok


async def test_posting_the_same_key_twice_writes_once():
    async with session_scope() as s:
        first = await ledger.post(s, "payment_captured", "payment_captured:pay_1", [(CLEARING, -500), (ESCROW, 500)])
    async with session_scope() as s:
        again = await ledger.post(s, "payment_captured", "payment_captured:pay_1", [(CLEARING, -500), (ESCROW, 500)])
    assert first is not None and again is None
    assert await counts() == (2, 1, 2)
    async with session_scope() as s:
        assert await ledger.balance(s, ESCROW) == 500


async def test_an_unbalanced_posting_is_refused_and_writes_nothing():
    async with session_scope() as s:
        with pytest.raises(ledger.UnbalancedTransaction):
            await ledger.post(s, "payment_captured", "k", [(CLEARING, -500), (ESCROW, 499)])
    assert await counts() == (0, 0, 0)


async def test_two_currencies_must_each_balance():
    ngn = ledger.escrow(1, "NGN")
    async with session_scope() as s:
        with pytest.raises(ledger.UnbalancedTransaction):
            await ledger.post(s, "payment_captured", "k", [(CLEARING, -500), (ngn, 500)])
    assert await counts() == (0, 0, 0)


async def test_overdrawing_a_non_negative_account_is_refused_and_keeps_the_callers_other_work():
    async with session_scope() as s:
        await ledger.post(s, "payment_captured", "cap", [(CLEARING, -1000), (ESCROW, 1000)])
    async with session_scope() as s:
        with pytest.raises(ledger.InsufficientFunds):
            await ledger.post(s, "escrow_released", "rel", [(ESCROW, -1001), (PAYABLE, 1001)])
        # the savepoint rolled back only the posting: the session is still usable
        ok = await ledger.post(s, "escrow_released", "rel2", [(ESCROW, -1000), (PAYABLE, 1000)])
        assert ok is not None
    async with session_scope() as s:
        assert await ledger.balance(s, ESCROW) == 0
        assert await ledger.balance(s, PAYABLE) == 1000
        assert await s.scalar(select(func.count()).select_from(LedgerTransaction)) == 2


async def test_the_database_refuses_to_update_or_delete_entries_and_transactions():
    async with session_scope() as s:
        await ledger.post(s, "payment_captured", "cap", [(CLEARING, -1000), (ESCROW, 1000)])
    for statement in ("UPDATE ledger_entries SET amount_minor = 1", "DELETE FROM ledger_entries",
                      "UPDATE ledger_transactions SET memo = 'x'", "DELETE FROM ledger_transactions"):
        with pytest.raises(DBAPIError, match="immutable"):
            async with session_scope() as s:
                await s.execute(text(statement))
    assert await counts() == (2, 1, 2)


async def test_the_database_refuses_an_unbalanced_transaction_at_commit_even_written_by_hand():
    async with session_scope() as s:
        await ledger.post(s, "payment_captured", "cap", [(CLEARING, -1000), (ESCROW, 1000)])
    with pytest.raises(DBAPIError, match="does not balance"):
        async with session_scope() as s:
            account_id = await s.scalar(select(LedgerAccount.id).where(LedgerAccount.key == ESCROW.key))
            txn = await s.scalar(text("INSERT INTO ledger_transactions (kind, idempotency_key) "
                                      "VALUES ('payment_captured', 'forged') RETURNING id"))
            await s.execute(text(
                "INSERT INTO ledger_entries (transaction_id, account_id, currency, amount_minor, balance_after_minor, "
                "account_version, created_at) VALUES (:t, :a, 'XAF', 5000, 6000, 2, now())"), {"t": txn, "a": account_id})
    assert await counts() == (2, 1, 2)


async def test_an_entry_in_another_currency_than_its_account_is_refused():
    async with session_scope() as s:
        await ledger.post(s, "payment_captured", "cap", [(CLEARING, -1000), (ESCROW, 1000)])
    with pytest.raises(DBAPIError):
        async with session_scope() as s:
            account_id = await s.scalar(select(LedgerAccount.id).where(LedgerAccount.key == ESCROW.key))
            txn = await s.scalar(text("INSERT INTO ledger_transactions (kind, idempotency_key) "
                                      "VALUES ('payment_captured', 'x') RETURNING id"))
            await s.execute(text(
                "INSERT INTO ledger_entries (transaction_id, account_id, currency, amount_minor, balance_after_minor, "
                "account_version, created_at) VALUES (:t, :a, 'NGN', 5, 5, 2, now()), (:t, :a, 'NGN', -5, 0, 3, now())"),
                {"t": txn, "a": account_id})
    assert await counts() == (2, 1, 2)


async def test_concurrent_transfers_in_opposite_directions_never_deadlock_and_conserve_money():
    # given: two funded accounts
    a, b = ledger.provider_payable(1, "XAF"), ledger.provider_payable(2, "XAF")
    async with session_scope() as s:
        await ledger.post(s, "payment_captured", "fund", [(CLEARING, -200_000), (a, 100_000), (b, 100_000)])

    async def transfer(i: int) -> None:
        src, dst = (a, b) if i % 2 else (b, a)
        async with session_scope() as s:
            # also touch the clearing account, so every posting locks three rows
            await ledger.post(s, "payout_sent", f"t{i}", [(src, -1000), (dst, 700), (CLEARING, 300)])

    # when: 60 transfers at once over real connections, half each way
    await asyncio.gather(*(transfer(i) for i in range(60)))
    # then
    async with session_scope() as s:
        check = await ledger.verify(s)
        assert check.ok, check
        assert await ledger.balance(s, a) + await ledger.balance(s, b) == 200_000 - 60 * 300
        assert await s.scalar(select(func.count()).select_from(LedgerTransaction)) == 61


@settings(max_examples=300, deadline=None)
@given(amount=st.integers(0, 10**9), shares=st.dictionaries(st.sampled_from("abcd"), st.integers(0, 10**9), min_size=1))
def test_allocate_splits_exactly_and_never_beyond_a_share(amount, shares):
    total = sum(shares.values())
    if amount > total:
        with pytest.raises(ValueError):
            fees.allocate(amount, shares)
        return
    parts = fees.allocate(amount, shares)
    assert sum(parts.values()) == amount
    assert all(0 <= parts[k] <= shares[k] for k in shares)


@settings(max_examples=300, deadline=None)
@given(price=st.integers(1, 10**10), commission=st.integers(0, 5000), surcharge=st.integers(0, 5000),
       affiliate=st.integers(0, 10000))
def test_a_breakdown_always_adds_up(price, commission, surcharge, affiliate):
    b = fees.breakdown(price, "XAF", commission_bps=commission, guest_surcharge_bps=surcharge,
                       affiliate_commission_bps=affiliate)
    assert b.total == b.price + b.guest_surcharge
    assert b.provider_share + b.commission + b.guest_surcharge == b.total
    assert 0 <= b.affiliate_commission <= b.commission + b.guest_surcharge
    assert b.provider_share >= 0


def test_the_default_fees_are_ten_percent_and_a_category_can_override_them(monkeypatch):
    from settings import get_settings

    b = fees.quote(10_000, "XAF", "plumbing", guest=True)
    assert (b.price, b.guest_surcharge, b.total, b.commission, b.provider_share) == (10_000, 1000, 11_000, 1000, 9000)
    monkeypatch.setattr(get_settings(), "fee_category_overrides", {"cleaning": {"commission_bps": 1500}})
    c = fees.quote(10_000, "XAF", "cleaning", guest=False)
    assert (c.guest_surcharge, c.total, c.commission, c.provider_share) == (0, 10_000, 1500, 8500)


async def test_a_posting_that_names_a_locked_order_does_not_wait_for_the_orders_lock():
    """Regression (found by the concurrent property test): a refund settling inserts a ledger
    transaction naming its order while an admin's transaction holds that order's row lock and waits
    for the same accounts. Row locks are FOR NO KEY UPDATE, so the foreign-key check does not block."""
    from domain.orders import service_request as sr
    from tests.support.factories import make_service

    service, tiers = await make_service(name="Leak repair", prices={"XAF": 10_000})
    async with session_scope() as s:
        bought = await sr.purchase_service(
            s, service_id=service.id, tier_id=tiers[0].id, user=None,
            customer=sr.CustomerDetails(full_name="Ada Nkem", email="ada@example.cm", phone="+237671234567"))
    async with session_scope() as holder:
        await locks.lock_request(holder, bought.service_request.id)  # held until this block ends
        async with session_scope() as s:
            await s.execute(text("SET LOCAL lock_timeout = '3s'"))  # a wait would raise, not hang
            posted = await ledger.post(
                s, "payment_captured", "cap", [(CLEARING, -1000), (ledger.escrow(bought.service_request.id, "XAF"), 1000)],
                service_request_id=bought.service_request.id,
            )
        assert posted is not None
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(LedgerTransaction)) == 1


async def test_a_row_lock_reads_the_row_again_even_when_the_session_had_read_it_before():
    """models/db.py: every SELECT ... FOR UPDATE refreshes the objects it locks (populate_existing)."""
    from models import Service

    async with session_scope() as s:
        s.add(Service(slug="leak-repair", name="Leak repair", category="plumbing", description="x"))
    async with session_scope() as reader:
        seen = await reader.scalar(select(Service).where(Service.slug == "leak-repair"))
        assert seen.name == "Leak repair"
        async with session_scope() as writer:  # another transaction changes it meanwhile
            await writer.execute(text("UPDATE services SET name = 'Pipe repair'"))
        locked = await reader.scalar(select(Service).where(Service.slug == "leak-repair").with_for_update(key_share=True))
        plain = await reader.scalar(select(Service).where(Service.slug == "leak-repair"))
    assert locked is seen
    assert locked.name == "Pipe repair"
    assert plain.name == "Pipe repair"  # the same object, refreshed by the lock
