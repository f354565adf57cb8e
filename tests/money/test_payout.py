"""Provider payouts (domain/money/payout.py, workers/payout.py) against real PostgreSQL and Redis.

Orders are made through the real domain path: a guest buys "Leak repair" (10,000 FCFA, so the
provider's share after the 10 % commission is 9,000 FCFA; the guest pays 11,000 with the surcharge),
the sandbox's payment is confirmed, an admin assigns the provider and completes the order (an
admin's completion releases escrow at once). Payouts go through the sandbox gateway, whose magic
destinations pick the outcome: a number ending 0000 fails, 1111 is pending until the next status
query, anything else is paid at once.
"""

from __future__ import annotations

import asyncio
import re
import secrets

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from domain.money import ledger
from domain.money import payout as payout_domain
from domain.orders import dispute
from domain.orders import payment as payment_domain
from domain.orders import service_request as sr_domain
from domain.orders.service_request import CustomerDetails, purchase_service
from domain.shared import idempotency
from domain.shared.errors import Forbidden
from gateways import registry
from gateways.base import GatewayError
from gateways.sandbox import EventSubject, SandboxGateway, build_event
from models import (
    Email,
    IdempotencyKey,
    LedgerTransaction,
    OutboxMessage,
    Payment,
    Payout,
    PayoutDestination,
    PayoutStatusChange,
    ProviderEarning,
    WebhookEvent,
)
from models.db import session_scope
from settings import get_settings
from tests.support.contracts import accept_order
from tests.support.factories import make_provider, make_service, make_user, run_worker
from tests.support.money import clean_money_tables  # noqa: F401  (autouse fixture)

CUSTOMER = CustomerDetails(full_name="Ada Nkem", email="ada.nkem@example.cm", phone="+237671234567",
                           requirements="Kitchen sink leaks under the cabinet.")
PROVIDER_EMAIL = "eko@example.cm"
GOOD_PHONE = "+237671234567"  # paid at once by the sandbox
FAILING_PHONE = "+237670000000"  # ends 0000: the sandbox rejects it
PENDING_PHONE = "+237671111111"  # ends 1111: pending until the next status query


# --- helpers ----------------------------------------------------------------------------------------


async def provider_with_account(email: str = PROVIDER_EMAIL, name: str = "Eko Mbappe"):
    user = await make_user(email, role="provider", full_name=name)
    provider = await make_provider(user_id=user.id, display_name=f"{name} Plumbing")
    return provider, user


async def admin_user():
    return await make_user("admin@odim.local", role="admin", full_name="Operator")


async def completed_order(provider_id: int, admin, *, price: int = 10000, service=None) -> int:
    """A paid and completed order assigned to ``provider_id``; returns its id."""
    if service is None:
        service = await make_service(name=f"Leak repair {secrets.token_hex(3)}", prices={"XAF": price})
    svc, tiers = service
    async with session_scope() as s:
        bought = await purchase_service(s, service_id=svc.id, tier_id=tiers[0].id, customer=CUSTOMER, user=None)
    request_id = bought.service_request.id
    async with session_scope() as s:
        payment = await s.scalar(select(Payment).where(Payment.id == bought.payment.id).with_for_update())
        outcome = await payment_domain.apply_payment_status(
            s, payment, "succeeded", amount_minor=payment.amount_minor, currency=payment.currency,
            event_id=f"evt_{secrets.token_hex(8)}",
        )
        assert outcome == "completed"
    async with session_scope() as s:
        await sr_domain.assign_provider(s, request_id, provider_id, actor=admin)
    await accept_order(request_id)  # both parties accept the contract (tests/orders/test_contracts.py)
    async with session_scope() as s:
        await sr_domain.update_status(s, request_id, "in_progress", actor=admin)
        await sr_domain.update_status(s, request_id, "completed", actor=admin)
    return request_id


async def add_destination(provider_id: int, phone: str = GOOD_PHONE, **overrides) -> PayoutDestination:
    fields = dict(kind="mobile_money", currency="XAF", country_code="CM", holder_name="Eko Mbappe", phone=phone,
                  operator="mtn")
    fields.update(overrides)
    async with session_scope() as s:
        return await payout_domain.register_destination(s, provider_id, **fields)


async def payouts() -> list[Payout]:
    async with session_scope() as s:
        return list((await s.scalars(select(Payout).order_by(Payout.id))).all())


async def earnings() -> list[tuple[int, str, int, int | None]]:
    """``(service_request_id, status, amount_minor, payout_id)`` of every earning, by order."""
    async with session_scope() as s:
        return [tuple(r) for r in (await s.execute(
            select(ProviderEarning.service_request_id, ProviderEarning.status, ProviderEarning.amount_minor,
                   ProviderEarning.payout_id).order_by(ProviderEarning.service_request_id)
        )).all()]


async def history(payout_id: int) -> list[tuple[str | None, str]]:
    async with session_scope() as s:
        return [tuple(r) for r in (await s.execute(
            select(PayoutStatusChange.from_status, PayoutStatusChange.to_status)
            .where(PayoutStatusChange.payout_id == payout_id).order_by(PayoutStatusChange.id)
        )).all()]


async def balances(provider_id: int) -> dict[str, int]:
    async with session_scope() as s:
        return {
            "payable": await ledger.balance(s, ledger.provider_payable(provider_id, "XAF")),
            "in_transit": await ledger.balance(s, ledger.payout_in_transit(provider_id, "XAF")),
            "clearing": await ledger.balance(s, ledger.gateway_clearing("sandbox", "XAF")),
        }


async def payout_ledger_kinds() -> list[str]:
    async with session_scope() as s:
        return list((await s.scalars(
            select(LedgerTransaction.kind).where(LedgerTransaction.kind.like("payout_%")).order_by(LedgerTransaction.id)
        )).all())


async def ledger_ok() -> bool:
    async with session_scope() as s:
        return (await ledger.verify(s)).ok


async def payout_emails() -> list[tuple[str, str, str]]:
    """``(kind, to, body)`` of payout emails and operator alerts, oldest first."""
    async with session_scope() as s:
        return [tuple(r) for r in (await s.execute(
            select(Email.kind, Email.to_address, Email.body_text)
            .where(Email.kind.in_(("payout", "operator_alert"))).order_by(Email.id)
        )).all()]


async def send_jobs() -> list[dict]:
    async with session_scope() as s:
        return list((await s.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.target == "send_payout").order_by(OutboxMessage.id)
        )).all())


async def sandbox_payout_keys() -> list[str]:
    client = aioredis.from_url(get_settings().redis_url, decode_responses=True)
    try:
        return sorted(await client.keys("odim:sandbox:payout:*"))
    finally:
        await client.aclose()


async def apply(reference: str, status: str, **kwargs) -> str:
    async with session_scope() as s:
        return await payout_domain.apply_payout_status(s, reference, status, **kwargs)


async def count(model, *where) -> int:
    async with session_scope() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))


# --- batching -----------------------------------------------------------------------------------


async def test_run_batches_two_orders_into_one_paid_payout_with_a_balanced_ledger():
    # given a provider with a default mobile-money destination and two completed orders
    admin = await admin_user()
    provider, user = await provider_with_account()
    await add_destination(provider.id)
    first = await completed_order(provider.id, admin)
    second = await completed_order(provider.id, admin)
    assert await balances(provider.id) == {"payable": 18000, "in_transit": 0, "clearing": -22000}

    # when the payout run goes
    made = await payout_domain.run_payouts()

    # then one payout holds both earnings, with the money in transit and a send job queued
    assert made == 1
    [payout] = await payouts()
    assert re.fullmatch(r"po_[0-9a-f]{24}", payout.reference)
    assert (payout.provider_id, payout.amount_minor, payout.currency, payout.status, payout.gateway) == (
        provider.id, 18000, "XAF", "pending", "sandbox")
    assert payout.destination == {"kind": "mobile_money", "holder_name": "Eko Mbappe", "country_code": "CM",
                                  "phone": GOOD_PHONE, "operator": "mtn", "bank_code": None, "account_number": None}
    assert await earnings() == [(first, "in_payout", 9000, payout.id), (second, "in_payout", 9000, payout.id)]
    assert await balances(provider.id) == {"payable": 0, "in_transit": 18000, "clearing": -22000}
    assert await history(payout.id) == [(None, "pending")]
    assert await send_jobs() == [{"payout_id": payout.id}]
    assert await payout_ledger_kinds() == ["payout_sent"]

    # when the send_payout job runs (the sandbox pays at once)
    assert await payout_domain.send_payout(payout.id) == "paid"

    # then the payout is paid and settled, the money left through the gateway, the provider is told
    [paid] = await payouts()
    assert (paid.status, paid.attempts, paid.gateway_id) == ("paid", 1, f"sbx_{payout.reference}")
    assert paid.sent_at is not None and paid.settled_at is not None
    assert await history(payout.id) == [(None, "pending"), ("pending", "sent"), ("sent", "paid")]
    assert await earnings() == [(first, "paid", 9000, payout.id), (second, "paid", 9000, payout.id)]
    assert await balances(provider.id) == {"payable": 0, "in_transit": 0, "clearing": -4000}
    assert await payout_ledger_kinds() == ["payout_sent", "payout_paid"]
    assert await ledger_ok()
    [(kind, to, body)] = await payout_emails()
    assert (kind, to) == ("payout", PROVIDER_EMAIL)
    assert f"Your payout {payout.reference} of 18,000 FCFA is paid." in body
    assert "Destination: MTN mobile money ****4567" in body
    assert "671234567" not in body

    # and a second run finds nothing more to pay
    assert await payout_domain.run_payouts() == 0
    assert len(await payouts()) == 1


async def test_no_payout_below_the_minimum():
    # given a provider whose only earning (900 FCFA) is below the 1,000 FCFA minimum
    admin = await admin_user()
    provider, _ = await provider_with_account()
    await add_destination(provider.id)
    order = await completed_order(provider.id, admin, price=1000)
    assert get_settings().payout_minimum_minor["XAF"] == 1000

    # when the run goes, and when the provider asks for an instant payout
    made = await payout_domain.run_payouts()
    async with session_scope() as s:
        created = await payout_domain.create_payout_for_provider(s, provider.id, "XAF")

    # then nothing happened
    assert (made, created) == (0, None)
    assert await payouts() == []
    assert await earnings() == [(order, "available", 900, None)]
    assert await balances(provider.id) == {"payable": 900, "in_transit": 0, "clearing": -1100}
    assert await payout_ledger_kinds() == []
    assert await send_jobs() == []
    assert await payout_emails() == []


async def test_no_payout_without_a_default_destination():
    # given two providers with earnings: one never registered a destination, the other disabled its only one
    admin = await admin_user()
    provider, _ = await provider_with_account()
    other, _ = await provider_with_account("ngozi@example.cm", "Ngozi Eze")
    order = await completed_order(provider.id, admin)
    other_order = await completed_order(other.id, admin)
    destination = await add_destination(other.id)
    async with session_scope() as s:
        await payout_domain.disable_destination(s, other.id, destination.id)

    # when the run goes
    made = await payout_domain.run_payouts()
    async with session_scope() as s:
        created = await payout_domain.create_payout_for_provider(s, provider.id, "XAF")

    # then nothing happened
    assert (made, created) == (0, None)
    assert await payouts() == []
    assert await earnings() == [(order, "available", 9000, None), (other_order, "available", 9000, None)]
    assert await payout_ledger_kinds() == []
    assert await send_jobs() == []
    assert await payout_emails() == []


async def test_open_dispute_holds_only_that_orders_earning():
    # given two completed orders of one provider, and a dispute opened on the first before the run
    admin = await admin_user()
    provider, _ = await provider_with_account()
    await add_destination(provider.id)
    disputed = await completed_order(provider.id, admin)
    clean = await completed_order(provider.id, admin)
    async with session_scope() as s:
        opened = await dispute.open_dispute(s, disputed, actor=admin, reason="The leak came back the next day.")

    # when the run goes
    assert await payout_domain.run_payouts() == 1

    # then only the undisputed order is paid out; the disputed one is held
    [payout] = await payouts()
    assert payout.amount_minor == 9000
    assert await earnings() == [(disputed, "available", 9000, None), (clean, "in_payout", 9000, payout.id)]
    async with session_scope() as s:
        summary = await payout_domain.earnings_summary(s, provider.id)
        lines, has_next = await payout_domain.list_earnings(s, provider.id)
    assert summary == [payout_domain.EarningsSummary("XAF", available_minor=0, held_minor=9000, in_payout_minor=9000,
                                                     paid_out_minor=0)]
    assert [(e.service_request_id, held) for e, held, _ in lines] == [(clean, False), (disputed, True)]
    assert has_next is False
    assert await balances(provider.id) == {"payable": 9000, "in_transit": 9000, "clearing": -22000}

    # when the payout is paid and the admin releases the dispute to the provider, the next run pays the rest
    assert await payout_domain.send_payout(payout.id) == "paid"
    async with session_scope() as s:
        await dispute.resolve_dispute(s, opened.id, actor=admin, resolution="release", note="Fixed on site.")
    assert await payout_domain.run_payouts() == 1
    first, second = await payouts()
    assert (second.amount_minor, second.status) == (9000, "pending")
    assert await earnings() == [(disputed, "in_payout", 9000, second.id), (clean, "paid", 9000, first.id)]
    assert await ledger_ok()


# --- failure, pending, idempotency ----------------------------------------------------------------


async def test_failed_payout_returns_the_money_and_a_new_payout_pays_it_after_the_destination_is_fixed():
    # given a payout to a destination the gateway rejects
    admin = await admin_user()
    provider, _ = await provider_with_account()
    await add_destination(provider.id, phone=FAILING_PHONE)
    order = await completed_order(provider.id, admin)
    assert await payout_domain.run_payouts() == 1
    [failed] = await payouts()

    # when it is sent
    assert await payout_domain.send_payout(failed.id) == "failed"

    # then the money is back in the provider's payable balance and the earning is available again
    [after] = await payouts()
    assert (after.status, after.failure_reason, after.settled_at) == ("failed", "destination rejected", None)
    assert await history(failed.id) == [(None, "pending"), ("pending", "failed")]
    assert await earnings() == [(order, "available", 9000, None)]
    assert await balances(provider.id) == {"payable": 9000, "in_transit": 0, "clearing": -11000}
    assert await payout_ledger_kinds() == ["payout_sent", "payout_failed"]
    [(kind, to, body)] = await payout_emails()
    assert (kind, to) == ("payout", PROVIDER_EMAIL)
    assert f"Your payout {failed.reference} of 9,000 FCFA is failed." in body
    assert "Destination: MTN mobile money ****0000" in body
    assert "The money is back in your available balance" in body

    # when the provider registers a working number and the next run goes
    await add_destination(provider.id, phone=GOOD_PHONE)
    assert await payout_domain.run_payouts() == 1
    _, retry = await payouts()
    assert await payout_domain.send_payout(retry.id) == "paid"

    # then a new payout with a new reference paid the same earning once
    assert retry.reference != failed.reference and re.fullmatch(r"po_[0-9a-f]{24}", retry.reference)
    assert [(p.id, p.status, p.amount_minor) for p in await payouts()] == [(failed.id, "failed", 9000),
                                                                          (retry.id, "paid", 9000)]
    assert retry.destination["phone"] == GOOD_PHONE
    assert await earnings() == [(order, "paid", 9000, retry.id)]
    assert await balances(provider.id) == {"payable": 0, "in_transit": 0, "clearing": -2000}
    assert await payout_ledger_kinds() == ["payout_sent", "payout_failed", "payout_sent", "payout_paid"]
    assert await ledger_ok()
    assert await sandbox_payout_keys() == sorted(
        [f"odim:sandbox:payout:{failed.reference}", f"odim:sandbox:payout:{retry.reference}"])


async def test_the_run_stops_paying_a_destination_that_failed_three_times_in_a_row():
    # given a destination the gateway rejects, and three runs that each failed
    admin = await admin_user()
    provider, user = await provider_with_account()
    await add_destination(provider.id, phone=FAILING_PHONE)
    order = await completed_order(provider.id, admin)
    for _ in range(payout_domain.MAX_FAILURES_PER_DESTINATION):
        assert await payout_domain.run_payouts() == 1
        assert await payout_domain.send_payout((await payouts())[-1].id) == "failed"
    assert [p.status for p in await payouts()] == ["failed"] * 3

    # when the next run goes
    made = await payout_domain.run_payouts()

    # then it leaves that destination alone: no payout, no ledger transaction, no email
    assert made == 0
    assert len(await payouts()) == 3
    assert await earnings() == [(order, "available", 9000, None)]
    assert await payout_ledger_kinds() == ["payout_sent", "payout_failed"] * 3
    assert len(await payout_emails()) == 3

    # when the provider asks for a payout itself, the destination is tried again
    async with session_scope() as s:
        asked = await payout_domain.request_payout(s, user, "XAF", "try-again")
    assert asked.destination["phone"] == FAILING_PHONE

    # and a new destination makes the run pay again
    assert await payout_domain.send_payout(asked.id) == "failed"
    await add_destination(provider.id, phone=GOOD_PHONE)
    assert await payout_domain.run_payouts() == 1
    assert await payout_domain.send_payout((await payouts())[-1].id) == "paid"
    assert await earnings() == [(order, "paid", 9000, (await payouts())[-1].id)]
    assert await ledger_ok()


async def test_pending_payout_settles_on_the_status_query():
    # given a payout the gateway accepts but does not settle at once
    admin = await admin_user()
    provider, _ = await provider_with_account()
    await add_destination(provider.id, phone=PENDING_PHONE)
    order = await completed_order(provider.id, admin)
    await payout_domain.run_payouts()
    [payout] = await payouts()

    # when it is sent
    assert await payout_domain.send_payout(payout.id) == "sent"

    # then it is sent, its money still in transit, and no email yet
    [sent] = await payouts()
    assert (sent.status, sent.settled_at) == ("sent", None)
    assert sent.sent_at is not None
    assert await earnings() == [(order, "in_payout", 9000, payout.id)]
    assert await balances(provider.id) == {"payable": 0, "in_transit": 9000, "clearing": -11000}
    assert await payout_emails() == []

    # when the gateway is asked for its status (what reconciliation does) and the answer applied
    seen = await registry.get_gateway("sandbox").fetch_payout(payout.reference)
    assert await apply(payout.reference, seen.status, gateway_id=seen.gateway_id) == "paid"

    # then it is settled
    assert await history(payout.id) == [(None, "pending"), ("pending", "sent"), ("sent", "paid")]
    assert await earnings() == [(order, "paid", 9000, payout.id)]
    assert await balances(provider.id) == {"payable": 0, "in_transit": 0, "clearing": -2000}
    assert [k for k, _, _ in await payout_emails()] == ["payout"]
    assert await ledger_ok()


async def test_repeated_and_late_news_never_moves_a_settled_payout():
    # given a paid payout
    admin = await admin_user()
    provider, _ = await provider_with_account()
    await add_destination(provider.id)
    order = await completed_order(provider.id, admin)
    await payout_domain.run_payouts()
    [payout] = await payouts()
    assert await payout_domain.send_payout(payout.id) == "paid"
    before = (await history(payout.id), await balances(provider.id), await payout_emails())

    # when "paid" (and a late "pending") arrive again
    assert await apply(payout.reference, "paid") == "paid"
    assert await apply(payout.reference, "pending") == "paid"

    # then nothing changed: one payout_paid ledger transaction, one email
    assert (await history(payout.id), await balances(provider.id), await payout_emails()) == before
    assert await payout_ledger_kinds() == ["payout_sent", "payout_paid"]
    assert await earnings() == [(order, "paid", 9000, payout.id)]

    # when a "failed" arrives after "paid"
    assert await apply(payout.reference, "failed", failure_reason="transfer reversed") == "paid"

    # then the payout stays paid, no money moves, and the operator is alerted
    [after] = await payouts()
    assert (after.status, after.failure_reason) == ("paid", None)
    assert await payout_ledger_kinds() == ["payout_sent", "payout_paid"]
    assert await balances(provider.id) == before[1]
    emails = await payout_emails()
    assert [(k, to) for k, to, _ in emails] == [("payout", PROVIDER_EMAIL),
                                                 ("operator_alert", get_settings().operator_email)]
    assert f"Payout {payout.reference} (9,000 FCFA, provider {provider.id}, gateway sandbox) is paid here" in emails[1][2]
    assert await apply("po_never_made", "paid") == "unknown"
    assert await ledger_ok()


async def test_paid_after_failed_is_a_conflict_for_the_operator():
    # given a failed payout whose earning is available again
    admin = await admin_user()
    provider, _ = await provider_with_account()
    await add_destination(provider.id, phone=FAILING_PHONE)
    order = await completed_order(provider.id, admin)
    await payout_domain.run_payouts()
    [payout] = await payouts()
    assert await payout_domain.send_payout(payout.id) == "failed"
    before = (await history(payout.id), await balances(provider.id), await earnings())

    # when the gateway later says it was paid (twice)
    assert await apply(payout.reference, "paid") == "conflict"
    assert await apply(payout.reference, "paid") == "conflict"

    # then the payout stays failed, no money moves, and the operator is alerted once
    assert (await history(payout.id), await balances(provider.id), await earnings()) == before
    assert before[2] == [(order, "available", 9000, None)]
    assert await payout_ledger_kinds() == ["payout_sent", "payout_failed"]
    alerts = [(to, body) for kind, to, body in await payout_emails() if kind == "operator_alert"]
    assert len(alerts) == 1
    assert alerts[0][0] == get_settings().operator_email
    assert "may be paid again" in alerts[0][1]


class AnswerLostSandbox(SandboxGateway):
    """The sandbox, counting calls; the first create_payout's answer is lost after the sandbox
    recorded the payout (a connection reset), like a crash between the gateway's accept and our commit."""

    def __init__(self) -> None:
        self.creates = 0
        self.fetches = 0

    async def create_payout(self, **kwargs):
        self.creates += 1
        result = await super().create_payout(**kwargs)
        if self.creates == 1:
            raise GatewayError("connection reset after the request was sent", gateway="sandbox", retryable=True)
        return result

    async def fetch_payout(self, reference):
        self.fetches += 1
        return await super().fetch_payout(reference)


async def test_redelivered_send_payout_after_the_gateway_accepted_does_not_pay_twice():
    # given a payout whose first send reached the gateway but whose answer was lost
    gateway = AnswerLostSandbox()
    registry.register("sandbox", lambda: gateway)
    admin = await admin_user()
    provider, _ = await provider_with_account()
    await add_destination(provider.id)
    order = await completed_order(provider.id, admin)
    await payout_domain.run_payouts()
    [payout] = await payouts()
    with pytest.raises(GatewayError):
        await payout_domain.send_payout(payout.id)
    [pending] = await payouts()
    assert (pending.status, pending.attempts) == ("pending", 1)
    assert await sandbox_payout_keys() == [f"odim:sandbox:payout:{payout.reference}"]

    # when the job is redelivered (the actor's retry), and once more after it settled
    assert await payout_domain.send_payout(payout.id) == "paid"
    assert await payout_domain.send_payout(payout.id) == "paid"

    # then the retry asked the gateway by reference and created nothing more
    assert (gateway.creates, gateway.fetches) == (1, 1)
    assert await sandbox_payout_keys() == [f"odim:sandbox:payout:{payout.reference}"]
    [paid] = await payouts()
    assert (paid.status, paid.attempts) == ("paid", 2)
    assert await earnings() == [(order, "paid", 9000, payout.id)]
    assert await payout_ledger_kinds() == ["payout_sent", "payout_paid"]
    assert [k for k, _, _ in await payout_emails()] == ["payout"]
    assert await ledger_ok()


async def test_refused_payout_fails_without_retrying():
    # given a gateway that refuses the payout (a non-retryable 4xx)
    class RefusingSandbox(SandboxGateway):
        async def create_payout(self, **kwargs):
            raise GatewayError("insufficient balance", gateway="sandbox", retryable=False, status_code=400)

    registry.register("sandbox", RefusingSandbox)
    admin = await admin_user()
    provider, _ = await provider_with_account()
    await add_destination(provider.id)
    order = await completed_order(provider.id, admin)
    await payout_domain.run_payouts()
    [payout] = await payouts()

    # when it is sent
    assert await payout_domain.send_payout(payout.id) == "failed"

    # then it failed and the money is payable again
    [failed] = await payouts()
    assert (failed.status, failed.failure_reason) == ("failed", "insufficient balance")
    assert await earnings() == [(order, "available", 9000, None)]
    assert await balances(provider.id) == {"payable": 9000, "in_transit": 0, "clearing": -11000}
    assert await ledger_ok()


async def test_a_duplicate_reference_refusal_for_a_payout_the_gateway_has_is_not_a_failure():
    # given a gateway that records the payout but answers "duplicate reference" (a concurrent
    # delivery of the same job created it a moment earlier)
    class DuplicateSandbox(SandboxGateway):
        async def create_payout(self, **kwargs):
            await super().create_payout(**kwargs)
            raise GatewayError("duplicate transfer reference", gateway="sandbox", retryable=False, status_code=400)

    registry.register("sandbox", DuplicateSandbox)
    admin = await admin_user()
    provider, _ = await provider_with_account()
    await add_destination(provider.id)
    order = await completed_order(provider.id, admin)
    await payout_domain.run_payouts()
    [payout] = await payouts()

    # when it is sent
    assert await payout_domain.send_payout(payout.id) == "paid"

    # then the gateway's record by reference wins: paid once, never failed
    assert await history(payout.id) == [(None, "pending"), ("pending", "sent"), ("sent", "paid")]
    assert await earnings() == [(order, "paid", 9000, payout.id)]
    assert await payout_ledger_kinds() == ["payout_sent", "payout_paid"]
    assert await ledger_ok()


async def test_concurrent_runs_never_pay_an_earning_twice():
    # given two providers with payable earnings
    admin = await admin_user()
    first, _ = await provider_with_account()
    second, _ = await provider_with_account("ngozi@example.cm", "Ngozi Eze")
    for provider in (first, second):
        await add_destination(provider.id)
        await completed_order(provider.id, admin)
        await completed_order(provider.id, admin)

    # when four runs go at once, each over its own database connections
    made = await asyncio.gather(*(payout_domain.run_payouts() for _ in range(4)))

    # then exactly one payout per provider holds that provider's two earnings
    assert sum(made) == 2
    made_payouts = await payouts()
    assert sorted((p.provider_id, p.amount_minor) for p in made_payouts) == [(first.id, 18000), (second.id, 18000)]
    by_provider = {p.provider_id: p.id for p in made_payouts}
    async with session_scope() as s:
        rows = (await s.execute(select(ProviderEarning.provider_id, ProviderEarning.status, ProviderEarning.payout_id))).all()
    assert sorted(rows) == sorted([(pid, "in_payout", by_provider[pid]) for pid in (first.id, second.id)] * 2)
    assert await payout_ledger_kinds() == ["payout_sent", "payout_sent"]
    assert len(await send_jobs()) == 2
    assert await ledger_ok()


# --- the worker path and webhooks -------------------------------------------------------------------


async def test_worker_sends_the_payout_and_a_payout_webhook_settles_it(api_client, mailbox):
    import workers  # noqa: F401  (the Redis broker the outbox dispatches to)
    from workers import payout as payout_worker

    # given a pending-at-the-gateway destination and a completed order
    admin = await admin_user()
    provider, _ = await provider_with_account()
    await add_destination(provider.id, phone=PENDING_PHONE)
    order = await completed_order(provider.id, admin)

    # when the scheduler's payout job runs and a real worker processes the send_payout job
    assert await payout_worker.run_payouts_job() == 1
    await run_worker()

    # then the payout was accepted by the gateway
    [payout] = await payouts()
    assert (payout.status, payout.attempts) == ("sent", 1)

    # when the gateway's signed "payout.paid" webhook arrives and the worker processes it
    raw, headers = build_event(EventSubject(payout.reference, payout.amount_minor, "XAF"), "payout.paid")
    response = await api_client.post("/webhooks/sandbox", content=raw, headers=headers)
    assert response.status_code == 200
    await run_worker()

    # then the payout is paid, and the provider got the email through SMTP
    [paid] = await payouts()
    assert paid.status == "paid"
    assert await earnings() == [(order, "paid", 9000, payout.id)]
    async with session_scope() as s:
        results = (await s.scalars(select(WebhookEvent.result).where(WebhookEvent.reference == payout.reference))).all()
    assert results == ["payout:paid"]
    mails = [m for m in mailbox() if m["To"] == PROVIDER_EMAIL and "payout" in m["Subject"]]
    assert [m["Subject"] for m in mails] == [f"Odim: payout {payout.reference} of 9,000 FCFA"]
    assert "is paid." in mails[0].get_body(("plain",)).get_content()
    assert await ledger_ok()


# --- instant payouts, lists -------------------------------------------------------------------------


async def test_request_payout_is_idempotent_per_key():
    # given a provider with one payable order
    admin = await admin_user()
    provider, user = await provider_with_account()
    await add_destination(provider.id)
    await completed_order(provider.id, admin)

    # when the provider asks for a payout, then repeats the same request
    async with session_scope() as s:
        first = await payout_domain.request_payout(s, user, "XAF", "tap-1")
    async with session_scope() as s:
        again = await payout_domain.request_payout(s, user, "xaf", "tap-1")

    # then both return the same payout, made once
    assert again.id == first.id
    assert (first.amount_minor, first.idempotency_key) == (9000, "tap-1")
    assert len(await payouts()) == 1
    assert await payout_ledger_kinds() == ["payout_sent"]
    assert await send_jobs() == [{"payout_id": first.id}]

    # when the key is reused for another currency, or a new key finds nothing left to pay
    async with session_scope() as s:
        with pytest.raises(idempotency.IdempotencyKeyReused):
            await payout_domain.request_payout(s, user, "NGN", "tap-1")
    async with session_scope() as s:
        with pytest.raises(payout_domain.BelowPayoutMinimum) as below:
            await payout_domain.request_payout(s, user, "XAF", "tap-2")

    # then nothing more was written, not even the second key
    assert (below.value.code, below.value.field) == ("BELOW_PAYOUT_MINIMUM", "currency")
    assert below.value.message == "The available balance 0 FCFA is below the payout minimum 1,000 FCFA"
    assert len(await payouts()) == 1
    assert await count(IdempotencyKey) == 1
    customer = await make_user("ada@example.cm")
    async with session_scope() as s:
        with pytest.raises(Forbidden):
            await payout_domain.request_payout(s, customer, "XAF", "tap-3")


async def test_list_payouts_pages_newest_first():
    # given three payouts of one provider and one of another
    admin = await admin_user()
    provider, _ = await provider_with_account()
    other, _ = await provider_with_account("ngozi@example.cm", "Ngozi Eze")
    await add_destination(provider.id)
    await add_destination(other.id)
    service = await make_service(name="Leak repair", prices={"XAF": 10000})
    for owner in (provider.id, provider.id, other.id, provider.id):
        await completed_order(owner, admin, service=service)
        await payout_domain.run_payouts()
    ids = [p.id for p in await payouts() if p.provider_id == provider.id]

    # when the provider's payouts are read two at a time
    async with session_scope() as s:
        page1, more1, total = await payout_domain.list_payouts(s, provider.id, first=2)
        page2, more2, _ = await payout_domain.list_payouts(s, provider.id, first=2, after=page1[-1][1])
        everyone, _, all_total = await payout_domain.list_payouts(s, None, first=100)
        with pytest.raises(payout_domain.InvalidCursor):
            await payout_domain.list_payouts(s, provider.id, after="not a cursor!")

    # then they come newest first, without gaps or repeats
    assert [p.id for p, _ in page1] == [ids[2], ids[1]] and more1 is True and total == 3
    assert [p.id for p, _ in page2] == [ids[0]] and more2 is False
    assert len(everyone) == all_total == 4


# --- destinations -----------------------------------------------------------------------------------


async def test_register_destination_normalises_and_swaps_the_default():
    provider, _ = await provider_with_account()

    # when the provider registers a local-format number, then a bank account in NGN, then a second XAF wallet
    first = await add_destination(provider.id, phone="6 71 23 45 67", operator="MTN", holder_name="  Eko   Mbappe ")
    bank = await add_destination(provider.id, kind="bank_account", currency="NGN", country_code="ng",
                                 bank_code="058", account_number="0123-456789", phone=None, operator=None)
    second = await add_destination(provider.id, phone="+237 6 99 00 12 34", operator="orange")
    spare = await add_destination(provider.id, phone="+237 6 99 00 56 78", operator="orange", make_default=False)

    # then numbers are normalised and one default per currency remains, the newest one asked for
    assert (first.phone, first.operator, first.holder_name) == ("+237671234567", "mtn", "Eko Mbappe")
    assert (bank.bank_code, bank.account_number, bank.phone, bank.is_default) == ("058", "0123456789", None, True)
    async with session_scope() as s:
        listed = await payout_domain.list_destinations(s, provider.id)
        assert [(d.id, d.currency, d.is_default) for d in listed] == [
            (first.id, "XAF", False), (bank.id, "NGN", True), (second.id, "XAF", True), (spare.id, "XAF", False)]
        assert (await payout_domain.default_destination(s, provider.id, "XAF")).id == second.id
        await payout_domain.disable_destination(s, provider.id, second.id)
        assert await payout_domain.default_destination(s, provider.id, "XAF") is None
        assert [d.id for d in await payout_domain.list_destinations(s, provider.id)] == [first.id, bank.id, spare.id]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            dict(phone="12345"),
            [("phone", "INVALID_PHONE", "Not a valid phone number for its country; use the international form, "
                                        "e.g. +237 6 71 23 45 67")],
            id="bad-phone",
        ),
        pytest.param(
            dict(phone="+2348031234567"),
            [("phone", "INVALID_PHONE", "This is not a number of CM")],
            id="phone-of-another-country",
        ),
        pytest.param(
            dict(phone="+237222123456"),
            [("phone", "INVALID_PHONE", "This is not a mobile number")],
            id="landline",
        ),
        pytest.param(
            dict(phone=None, operator="airtel", holder_name="  "),
            [("holderName", "REQUIRED", "Give the name the account is registered to"),
             ("phone", "REQUIRED", "A mobile-money destination needs its phone number"),
             ("operator", "UNKNOWN_OPERATOR", "operator must be one of mtn, orange in CM")],
            id="missing-fields",
        ),
        pytest.param(
            dict(currency="NGN", country_code="NG", phone="+2348031234567", operator="mtn"),
            [("countryCode", "MOBILE_MONEY_UNAVAILABLE",
              "Mobile-money payouts are not offered in NG; use a bank account")],
            id="no-mobile-money-in-nigeria",
        ),
        pytest.param(
            dict(currency="NGN"),
            [("currency", "CURRENCY_MISMATCH", "Destinations in CM are paid in XAF")],
            id="currency-of-another-country",
        ),
        pytest.param(
            dict(kind="cash", currency="GBP", country_code="XX"),
            [("kind", "INVALID_KIND", "kind must be MOBILE_MONEY or BANK_ACCOUNT"),
             ("currency", "UNSUPPORTED_CURRENCY", "Payouts are made in INR, NGN, USD, XAF"),
             ("countryCode", "INVALID_COUNTRY", "countryCode must be an ISO 3166 country code such as CM")],
            id="unknown-kind-currency-country",
        ),
        pytest.param(
            dict(kind="bank_account", currency="NGN", country_code="NG", bank_code="GTB", account_number="12345"),
            [("bankCode", "INVALID_BANK_CODE", "bankCode must be a 3 to 6 digit bank code, e.g. 058"),
             ("accountNumber", "INVALID_ACCOUNT_NUMBER", "accountNumber must be 10 digits")],
            id="bad-nuban",
        ),
        pytest.param(
            dict(kind="bank_account", currency="INR", country_code="IN", bank_code="HDFC1234567",
                 account_number="12AB56789"),
            [("bankCode", "INVALID_BANK_CODE", "bankCode must be an IFSC, e.g. HDFC0001234"),
             ("accountNumber", "INVALID_ACCOUNT_NUMBER", "accountNumber must be 9 to 18 digits")],
            id="bad-ifsc",
        ),
    ],
)
async def test_register_destination_lists_every_input_error(fields, expected):
    # given a provider
    provider, _ = await provider_with_account()

    # when a destination with bad input is registered
    with pytest.raises(payout_domain.InvalidPayoutDestination) as raised:
        await add_destination(provider.id, **fields)

    # then every problem is listed with its input field, and nothing was written
    assert [(e.field, e.code, e.message) for e in raised.value.errors] == expected
    assert (raised.value.field, raised.value.code) == expected[0][:2]
    assert await count(PayoutDestination) == 0


async def test_register_destination_accepts_an_indian_bank_account():
    provider, _ = await provider_with_account()
    saved = await add_destination(provider.id, kind="bank_account", currency="INR", country_code="IN",
                                  bank_code="hdfc0001234", account_number="123456789012", phone=None)
    assert (saved.kind, saved.bank_code, saved.account_number, saved.operator) == (
        "bank_account", "HDFC0001234", "123456789012", None)
