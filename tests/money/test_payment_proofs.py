"""The money system's proofs, against real PostgreSQL, Redis and a real Dramatiq worker:

* 100 simultaneous purchases and their payment webhooks end with exactly 100 captured payments and
  a balanced ledger;
* the same webhook delivered 10 times, interleaved out of order with a late decline, ends in the
  right final state with one capture;
* an actor whose retries run out lands in the PostgreSQL dead-letter table (payload, headers,
  attempts, traceback); the sweeper leaves it alone; a replay is idempotent;
* refund and payout events from the gateway settle them once, whatever the order and the repeats.
(The SIGKILL proof is tests/system/test_worker_crash.py; the dispute-blocks-payout proof is
tests/money/test_payout.py.)
"""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from sqlalchemy import func, select, update

import server
from domain.money import ledger, refund
from domain.operations import maintenance
from domain.orders import payment as payment_domain
from domain.orders import refunds
from domain.orders import service_request as sr
from domain.orders.service_request import CustomerDetails, purchase_service
from domain.shared import dead_letter, outbox
from domain.shared.idempotency import IdempotencyKeyReused
from gateways import registry, sandbox
from gateways.base import GatewayUnavailable
from models import (
    DeadLetter,
    LedgerTransaction,
    OutboxMessage,
    Payment,
    PaymentStatusChange,
    Refund,
    ServiceRequest,
    WebhookEvent,
)
from models.db import session_scope
from resolvers.ids import encode_id
from settings import get_settings
from tests.support.contracts import accept_order
from tests.support.factories import make_provider, make_service, make_user, run_worker
from tests.support.graphql_client import gql

PURCHASE = """
mutation Purchase($input: PurchaseServiceInput!) {
  purchaseService(input: $input) {
    serviceRequest { id reference amount { amountMinor currency } }
    checkoutUrl
    errors { field code message }
  }
}
"""


async def count(model, *where) -> int:
    async with session_scope() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))


def details_of(checkout_url: str) -> sandbox.CheckoutDetails:
    return sandbox.parse_checkout(checkout_url.rsplit("/", 1)[1])


async def test_a_hundred_simultaneous_purchases_and_webhooks_capture_exactly_a_hundred_payments():
    # given: a service and 100 customers' worth of guest details
    service, tiers = await make_service(name="Leak repair", prices={"XAF": 10_000})
    service_gid, tier_gid = encode_id("Service", service.id), encode_id("ServiceTier", tiers[0].id)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://test",
                                 limits=limits, timeout=120) as client:

        async def customer(i: int) -> tuple[str, int]:
            body = await gql(client, PURCHASE, {"input": {
                "serviceId": service_gid, "tierId": tier_gid, "idempotencyKey": f"order-{i}",
                "customer": {"fullName": f"Customer {i}", "email": f"c{i}@example.cm", "phone": "+237671234567"},
            }})
            payload = body["data"]["purchaseService"]
            assert payload["errors"] == [], payload
            details = details_of(payload["checkoutUrl"])
            await sandbox.record_checkout_outcome(details, "paid")
            raw, headers = sandbox.build_event(details, "paid")
            response = await client.post("/webhooks/sandbox", content=raw, headers=headers)
            return payload["serviceRequest"]["reference"], response.status_code

        # when: 100 customers buy and pay at the same time, then the worker drains the queue
        results = await asyncio.gather(*(customer(i) for i in range(100)))
    await run_worker()
    # then
    assert sorted(status for _, status in results) == [200] * 100
    assert len({reference for reference, _ in results}) == 100
    assert await count(Payment, Payment.status == "completed") == 100
    assert await count(ServiceRequest, ServiceRequest.status == "pending_contact") == 100
    assert await count(LedgerTransaction, LedgerTransaction.kind == "payment_captured") == 100
    assert await count(WebhookEvent, WebhookEvent.result == "completed") == 100
    async with session_scope() as s:
        check = await ledger.verify(s)
        assert check.ok, check
        assert check.currency_sums == {"XAF": 0}
        assert await ledger.balance(s, ledger.gateway_clearing("sandbox", "XAF")) == -100 * 11_000
        held = await s.scalar(select(func.sum(ServiceRequest.captured_minor)))
        assert held == 100 * 11_000


async def test_the_same_webhook_ten_times_out_of_order_with_a_late_decline_captures_once(api_client):
    # given: a guest purchase, its paid event (one event id) and a decline event that arrives late
    service, tiers = await make_service(name="Leak repair", prices={"XAF": 10_000})
    async with session_scope() as s:
        bought = await purchase_service(
            s, service_id=service.id, tier_id=tiers[0].id, user=None,
            customer=CustomerDetails(full_name="Ada Nkem", email="ada@example.cm", phone="+237671234567"),
        )
    details = details_of(bought.checkout_url)
    await sandbox.record_checkout_outcome(details, "paid")
    paid = sandbox.build_event(details, "paid", event_id="evt_paid_1")
    declined = sandbox.build_event(details, "declined", event_id="evt_declined_1")
    deliveries = [paid] * 10 + [declined] * 10
    random.Random(7).shuffle(deliveries)
    # when: all twenty deliveries at once, then the worker; then the decline again, alone, after
    statuses = await asyncio.gather(*(api_client.post("/webhooks/sandbox", content=raw, headers=headers)
                                      for raw, headers in deliveries))
    await run_worker()
    late = await api_client.post("/webhooks/sandbox", content=declined[0], headers=declined[1])
    await run_worker()
    # then: two inbox rows (one per event id), the payment completed whatever came first, one capture
    assert sorted(r.status_code for r in statuses) == [200] * 20
    assert late.json() == {"received": True, "duplicate": True}
    assert await count(WebhookEvent) == 2
    async with session_scope() as s:
        payment = await s.get(Payment, bought.payment.id)
        history = (await s.execute(select(PaymentStatusChange.from_status, PaymentStatusChange.to_status)
                                   .where(PaymentStatusChange.payment_id == payment.id)
                                   .order_by(PaymentStatusChange.id))).all()
        request = await s.get(ServiceRequest, bought.service_request.id)
        assert payment.status == "completed"
        assert [tuple(h) for h in history] in (
            [(None, "pending"), ("pending", "completed")],
            [(None, "pending"), ("pending", "failed"), ("failed", "completed")],
        )
        assert request.status == "pending_contact"
        assert request.captured_minor == 11_000
        assert await s.scalar(select(func.count()).select_from(LedgerTransaction)) == 1
        assert (await ledger.verify(s)).ok


async def test_an_actor_out_of_retries_is_dead_lettered_and_a_replay_applies_it_once(monkeypatch, api_client):
    # given: a paid webhook whose processing fails every time (a bug, say)
    service, tiers = await make_service(name="Leak repair", prices={"XAF": 10_000})
    async with session_scope() as s:
        bought = await purchase_service(
            s, service_id=service.id, tier_id=tiers[0].id, user=None,
            customer=CustomerDetails(full_name="Ada Nkem", email="ada@example.cm", phone="+237671234567"),
        )
    details = details_of(bought.checkout_url)
    await sandbox.record_checkout_outcome(details, "paid")
    raw, headers = sandbox.build_event(details, "paid")
    real = payment_domain.process_webhook

    async def broken(session, inbox_id):
        raise RuntimeError("simulated bug in the payment handler")

    monkeypatch.setattr(payment_domain, "process_webhook", broken)
    # when: it is delivered and the worker retries until the retries run out
    response = await api_client.post("/webhooks/sandbox", content=raw, headers=headers)
    assert response.status_code == 200
    await run_worker()
    # then: one dead letter in PostgreSQL with what an operator needs, the payment untouched
    async with session_scope() as s:
        letter = (await s.scalars(select(DeadLetter))).one()
        inbox = (await s.scalars(select(WebhookEvent))).one()
    assert (letter.actor, letter.queue, letter.args, letter.source_type, letter.source_id, letter.status) == (
        "process_webhook", "payments", {"inbox_id": inbox.id}, "webhook", inbox.id, "open")
    assert letter.attempts == get_settings().actor_max_retries + 1
    assert letter.last_error == "RuntimeError: simulated bug in the payment handler"
    assert "simulated bug" in letter.traceback and "Traceback" in letter.traceback
    assert letter.payload["data"]["reference"] == bought.payment.reference
    assert "odim-sandbox-signature" in letter.headers
    assert inbox.dead_lettered_at is not None and inbox.processed_at is None
    assert await count(Payment, Payment.status == "pending") == 1
    # and the stalled-work sweeper does not pick a dead letter up again
    async with session_scope() as s:
        await s.execute(update(WebhookEvent).values(received_at=func.now() - func.make_interval(0, 0, 0, 0, 1)))
    assert (await maintenance.requeue_stalled_work(older_than_seconds=120))["webhooks"] == 0

    # when: the bug is fixed and an admin replays it, twice
    monkeypatch.setattr(payment_domain, "process_webhook", real)
    admin = await make_user("ops@example.com", role="admin")
    async with session_scope() as s:
        await dead_letter.replay(s, letter.id, admin_user_id=admin.id)
    async with session_scope() as s:
        again = await dead_letter.replay(s, letter.id, admin_user_id=admin.id)
        assert again.status == "replayed"
    await outbox.relay()
    await run_worker()
    # then: applied once
    assert await count(OutboxMessage, OutboxMessage.target == "process_webhook") == 2  # first delivery + one replay
    assert await count(Payment, Payment.status == "completed") == 1
    assert await count(LedgerTransaction, LedgerTransaction.kind == "payment_captured") == 1
    async with session_scope() as s:
        assert (await s.get(WebhookEvent, inbox.id)).result == "completed"
        with pytest.raises(dead_letter.DeadLetterNotOpen):
            await dead_letter.discard(s, letter.id, admin_user_id=admin.id)


async def test_refund_events_settle_a_refund_once_whatever_the_order_and_repeats(api_client, mailbox):
    # given: a paid order refunded by an admin; the gateway has not answered yet
    customer = await make_user("ada@example.com")
    service, tiers = await make_service(name="Leak repair", prices={"XAF": 10_000})
    async with session_scope() as s:
        bought = await purchase_service(s, service_id=service.id, tier_id=tiers[0].id, user=customer, customer=None)
    details = details_of(bought.checkout_url)
    await sandbox.record_checkout_outcome(details, "paid")
    await api_client.post("/webhooks/sandbox", content=(e := sandbox.build_event(details, "paid"))[0], headers=e[1])
    await run_worker()
    admin = await make_user("ops@example.com", role="admin")
    async with session_scope() as s:
        made = await refunds.refund_order(s, bought.service_request.id, actor_user_id=admin.id, amount_minor=4000,
                                         reason="Partly done")
    subject = sandbox.EventSubject(made.reference, 4000, "XAF")
    succeeded = sandbox.build_event(subject, "refund.succeeded", event_id="evt_refund_ok")
    failed = sandbox.build_event(subject, "refund.failed", event_id="evt_refund_failed_late")
    # when: the success arrives three times, then a stale failure, alongside the refund job itself
    for raw, headers in (succeeded, succeeded, failed, succeeded):
        await api_client.post("/webhooks/sandbox", content=raw, headers=headers)
    await run_worker()
    # then: settled once, money out of refunds payable once, one email to the customer
    async with session_scope() as s:
        settled = await s.get(Refund, made.id)
        assert settled.status == "succeeded"
        assert await s.scalar(select(func.count()).select_from(LedgerTransaction)
                              .where(LedgerTransaction.kind == "refund_sent")) == 1
        assert await ledger.balance(s, ledger.refunds_payable("XAF")) == 0
        assert await ledger.balance(s, ledger.escrow(bought.service_request.id, "XAF")) == 10_000 - 4000
        assert (await ledger.verify(s)).ok
        results = (await s.scalars(select(WebhookEvent.result).where(WebhookEvent.event_type.like("refund.%"))
                                   .order_by(WebhookEvent.id))).all()
    # the success settles it; the stale failure was either ignored (processed after the success) or
    # overtaken by it (processed before): never the final state
    assert results[0] == "refund:succeeded"
    assert results[1] in ("refund:succeeded", "refund:failed")
    refund_mail = [m for m in mailbox() if "refunded" in m["Subject"]]
    assert [m["Subject"] for m in refund_mail] == [f"Odim: 4,000 FCFA refunded on {bought.service_request.reference}"]


async def test_money_arriving_for_a_cancelled_or_already_released_order_is_captured_and_refunded_at_once():
    # given: order A cancelled before its payment arrived; order B paid, completed by an admin (released)
    service, tiers = await make_service(name="Leak repair", prices={"XAF": 10_000})
    admin = await make_user("ops@example.com", role="admin")
    provider_user = await make_user("pro@example.com", role="provider")
    provider = await make_provider(user_id=provider_user.id)
    guest = sr.CustomerDetails(full_name="Ada Nkem", email="ada@example.cm", phone="+237671234567")
    async with session_scope() as s:
        a = await sr.purchase_service(s, service_id=service.id, tier_id=tiers[0].id, user=None, customer=guest)
    async with session_scope() as s:
        b = await sr.purchase_service(s, service_id=service.id, tier_id=tiers[0].id, user=None, customer=guest)
    async with session_scope() as s:
        await sr.update_status(s, a.service_request.id, "cancelled", actor=admin)

    async def pay(payment_id: int, event_id: str) -> str:
        async with session_scope() as s:
            p = await s.scalar(select(Payment).where(Payment.id == payment_id).with_for_update())
            return await payment_domain.apply_payment_status(s, p, "succeeded", amount_minor=p.amount_minor,
                                                             currency=p.currency, event_id=event_id)

    assert await pay(b.payment.id, "evt_b") == "completed"
    async with session_scope() as s:
        await sr.assign_provider(s, b.service_request.id, provider.id, actor=admin)
    await accept_order(b.service_request.id)  # both parties accept the contract (tests/orders/test_contracts.py)
    for status in ("in_progress", "completed"):
        async with session_scope() as s:
            await sr.update_status(s, b.service_request.id, status, actor=admin)
    async with session_scope() as s:  # a second payment attempt for B, made at the gateway anyway
        second = Payment(service_request_id=b.service_request.id, gateway="sandbox", reference="pay_second_b",
                         amount_minor=11_000, currency="XAF", status="pending")
        s.add(second)
        await s.flush()
        second_id = second.id
    # when: both payments arrive
    assert await pay(a.payment.id, "evt_a") == "completed"
    assert await pay(second_id, "evt_b2") == "completed"
    # then: each is captured and moved straight to refunds payable; B's release is untouched
    async with session_scope() as s:
        check = await ledger.verify(s)
        assert check.ok, check
        assert await ledger.balance(s, ledger.escrow(a.service_request.id, "XAF")) == 0
        assert await ledger.balance(s, ledger.escrow(b.service_request.id, "XAF")) == 0
        assert await ledger.balance(s, ledger.refunds_payable("XAF")) == 22_000
        assert await ledger.balance(s, ledger.provider_payable(provider.id, "XAF")) == 9000
        refunds = (await s.execute(select(Refund.service_request_id, Refund.amount_minor, Refund.reason)
                                   .order_by(Refund.id))).all()
        assert [tuple(r) for r in refunds] == [
            (a.service_request.id, 11_000, "Refunded: the order was cancelled"),
            (b.service_request.id, 11_000, "Refunded: a second payment for an order already paid"),
        ]
        order_b = await s.get(ServiceRequest, b.service_request.id)
        assert (order_b.status, order_b.captured_minor, order_b.refunded_minor) == ("completed", 22_000, 11_000)
        assert order_b.settled_provider_minor + order_b.settled_platform_minor + order_b.settled_affiliate_minor == 11_000


async def test_ten_concurrent_refunds_with_one_idempotency_key_make_one_refund_and_another_input_is_refused():
    # given: a paid order
    service, tiers = await make_service(name="Leak repair", prices={"XAF": 10_000})
    admin = await make_user("ops@example.com", role="admin")
    async with session_scope() as s:
        bought = await sr.purchase_service(
            s, service_id=service.id, tier_id=tiers[0].id, user=None,
            customer=sr.CustomerDetails(full_name="Ada Nkem", email="ada@example.cm", phone="+237671234567"))
    async with session_scope() as s:
        p = await s.scalar(select(Payment).where(Payment.id == bought.payment.id).with_for_update())
        await payment_domain.apply_payment_status(s, p, "succeeded", amount_minor=11_000, currency="XAF", event_id="e")

    async def attempt(amount: int) -> int:
        async with session_scope() as s:
            made = await refunds.refund_order(s, bought.service_request.id, actor_user_id=admin.id, amount_minor=amount,
                                             reason="Partly done", idempotency_key="rf-1")
            return made.id

    # when: ten at once with the same key and input
    ids = await asyncio.gather(*(attempt(3000) for _ in range(10)))
    # then: the duplicates waited for the first and got its refund
    assert len(set(ids)) == 1
    assert await count(Refund) == 1
    with pytest.raises(IdempotencyKeyReused):
        await attempt(4000)
    assert await count(Refund) == 1
    async with session_scope() as s:
        assert (await s.get(ServiceRequest, bought.service_request.id)).refunded_minor == 3000
        assert (await ledger.verify(s)).ok


def test_the_cancellation_refund_policy_follows_the_notice_given(monkeypatch):
    monkeypatch.setattr(get_settings(), "refund_policy", [(48, 100), (24, 50), (0, 0)])
    percent = refund.refund_percent_for_cancellation
    assert [percent(h) for h in (None, 72, 48, 47.9, 24, 23, 0.5, 0, -1)] == [100, 100, 100, 50, 50, 0, 0, 0, 0]


async def test_a_purchase_while_the_gateways_circuit_is_open_fails_fast_with_a_retryable_error_and_writes_nothing(
    api_client, monkeypatch
):
    # given: XAF routed to a gateway whose circuit is open
    class OpenCircuit:
        name = "down"

        async def create_checkout(self, **kwargs):
            raise GatewayUnavailable("down", retry_after_seconds=12.5)

    registry.register("down", OpenCircuit)
    monkeypatch.setattr(get_settings(), "gateway_routes", {"XAF": "down"})
    service, tiers = await make_service(name="Leak repair", prices={"XAF": 10_000})
    try:
        # when
        body = await gql(api_client, PURCHASE, {"input": {
            "serviceId": encode_id("Service", service.id), "tierId": encode_id("ServiceTier", tiers[0].id),
            "customer": {"fullName": "Ada Nkem", "email": "ada@example.cm", "phone": "+237671234567"}}})
    finally:
        registry.reset()
    # then
    assert body["data"]["purchaseService"] == {"serviceRequest": None, "checkoutUrl": None, "errors": [{
        "field": None, "code": "GATEWAY_UNAVAILABLE", "message": "down is not answering; try again in about 13 s"}]}
    assert (await count(ServiceRequest), await count(Payment), await count(OutboxMessage)) == (0, 0, 0)
