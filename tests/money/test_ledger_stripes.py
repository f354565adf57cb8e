"""Hot accounts striped (domain/money/ledger.py): an order draws a stripe of the gateway clearing,
platform revenue, refunds payable and dispute losses accounts when it is created, every posting about
it uses that stripe, the stripes are reported as one account, and changing the stripe count never
moves an order's money to another row."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from domain.money import ledger, refund
from domain.orders import refunds
from models import LedgerAccount, LedgerEntry, LedgerTransaction, Refund, ServiceRequest
from models.db import session_scope
from settings import get_settings
from tests.support.factories import make_user
from tests.support.orders import domain_purchase, pay


async def clearing_key_of(request_id: int) -> str:
    """The clearing account the order's capture credited (its only negative leg)."""
    async with session_scope() as s:
        return await s.scalar(
            select(LedgerAccount.key).join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerTransaction.service_request_id == request_id, LedgerTransaction.kind == "payment_captured",
                   LedgerEntry.amount_minor < 0)
        )


async def test_each_capture_lands_on_its_orders_stripe_and_the_stripes_add_up_to_one_account(shop, monkeypatch):
    # given four stripes and twelve orders paid at once
    monkeypatch.setattr(get_settings(), "ledger_hot_account_stripes", 4)
    orders = [await domain_purchase(shop) for _ in range(12)]
    await asyncio.gather(*(pay(o.id) for o in orders))
    # then every capture credited the clearing row of its order's stripe
    async with session_scope() as s:
        stripes = dict((await s.execute(
            select(ServiceRequest.id, ServiceRequest.ledger_stripe).where(ServiceRequest.id.in_([o.id for o in orders]))
        )).all())
        paid = sum(o.amount_minor for o in orders)
        family = await ledger.balance(s, ledger.gateway_clearing("sandbox", "XAF"))
        check = await ledger.verify(s)
    assert set(stripes.values()) <= {0, 1, 2, 3}
    for order_id, stripe in stripes.items():
        suffix = f"#{stripe}" if stripe else ""
        assert await clearing_key_of(order_id) == f"gateway_clearing:gateway:sandbox:XAF{suffix}"
    # and the stripes are one account: its balance is minus everything captured, the ledger balanced
    assert family == -paid
    assert check.ok, check


async def test_changing_the_stripe_count_never_moves_an_orders_money_to_another_row(shop, monkeypatch):
    # given an order paid with 16 stripes on stripe 13
    monkeypatch.setattr(get_settings(), "ledger_hot_account_stripes", 16)
    monkeypatch.setattr(ledger, "new_stripe", lambda: 13)
    order = await domain_purchase(shop)
    await pay(order.id)
    admin = await make_user("ops@example.com", role="admin")
    # when the operator goes down to one stripe, then refunds it in full and the gateway confirms
    monkeypatch.setattr(get_settings(), "ledger_hot_account_stripes", 1)
    async with session_scope() as s:
        made = await refunds.refund_order(s, order.id, actor_user_id=admin.id, amount_minor=None, reason="Not needed")
    async with session_scope() as s:
        assert await refund.apply_refund_status(s, made.id, "succeeded") == "succeeded"
    # then the reservation and the sending both used the order's own stripe 13: nothing went negative
    async with session_scope() as s:
        assert (await s.get(Refund, made.id)).status == "succeeded"
        keys = (await s.scalars(
            select(LedgerAccount.key).join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
            .where(LedgerAccount.kind == "refunds_payable").distinct()
        )).all()
        assert keys == ["refunds_payable:platform:XAF#13"]
        assert await ledger.balance(s, ledger.refunds_payable("XAF")) == 0
        assert (await ledger.verify(s)).ok
