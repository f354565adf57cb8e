"""The transactional outbox: a job exists if and only if its transaction committed, is dispatched
to Redis once by ``relay()``, and survives a Redis outage (delayed, never lost). Also the
scheduler's re-queueing of work whose message was lost with Redis."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta

import dramatiq.broker
import httpx
import pytest
import redis.asyncio as aioredis
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import select, update

import server
import workers
from domain.messaging import notification
from domain.messaging.events import NotificationEvent
from domain.operations import maintenance
from domain.orders.service_request import CustomerDetails, purchase_service
from domain.shared import live, outbox
from gateways.sandbox import SandboxGateway, build_event, parse_checkout
from models import Email, OutboxMessage, Payment, WebhookEvent
from models.db import session_scope
from settings import get_settings
from tests.support.factories import make_service, run_worker


class Boom(Exception):
    pass


async def redis_messages(queue: str) -> list[dict]:
    """The Dramatiq messages waiting on ``queue`` in the test Redis."""
    client = aioredis.from_url(get_settings().redis_url)
    try:
        raw = await client.hgetall(f"dramatiq:{queue}.msgs")
    finally:
        await client.aclose()
    return sorted((json.loads(v) for v in raw.values()), key=lambda m: m["message_id"])


async def outbox_rows() -> list[OutboxMessage]:
    async with session_scope() as s:
        return list((await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def paid_webhook_for_a_new_purchase() -> tuple[bytes, dict[str, str]]:
    """A guest buys "Leak repair" (10,000 FCFA); returns the signed "paid" webhook for it."""
    service, tiers = await make_service(name="Leak repair", prices={"XAF": 10000})
    async with session_scope() as s:
        bought = await purchase_service(
            s, SandboxGateway(), service_id=service.id, tier_id=tiers[0].id, user=None,
            customer=CustomerDetails(full_name="Ada Nkem", email="ada@example.cm", phone="+237671234567"),
        )
    return build_event(parse_checkout(bought.checkout_url.rsplit("/", 1)[1]), "paid")


def note_event(title: str) -> NotificationEvent:
    """A typed live event (only those can be published) for a user's notification channel."""
    return NotificationEvent(id=1, prev=0, userId=7, kind="account", title=title, body="", subjectType=None,
                             subjectId=None, createdAt=None, readAt=None)


async def test_publishing_refuses_a_payload_that_is_not_the_channels_event_model():
    # when a plain dict, or another stream's event, is published
    async with session_scope() as s:
        with pytest.raises(TypeError):
            outbox.publish_event(s, live.notification_channel(7), {"n": 1})
        with pytest.raises(TypeError):
            outbox.publish_event(s, live.conversation_channel(7), note_event("wrong channel"))
    # then nothing was recorded
    assert await outbox_rows() == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


# --- only committed jobs exist, each dispatched once --------------------------------------------


async def test_job_enqueued_in_a_rolled_back_transaction_is_never_dispatched():
    # when
    with pytest.raises(Boom):
        async with session_scope() as s:
            outbox.enqueue_actor(s, "send_email", queue="notifications", email_id=1)
            outbox.publish_event(s, live.notification_channel(7), note_event("rolled back"))
            await s.flush()
            raise Boom()
    sent = await outbox.relay()
    # then
    assert sent == 0
    assert await outbox_rows() == []
    assert await redis_messages("notifications") == []


async def test_committed_job_is_dispatched_exactly_once():
    # given
    async with session_scope() as s:
        outbox.enqueue_actor(s, "send_email", queue="notifications", email_id=42)
    [row] = await outbox_rows()
    # when
    first = await outbox.relay()
    second = await outbox.relay()
    # then
    assert (first, second) == (1, 0)
    [row] = await outbox_rows()
    assert (row.attempts, row.last_error, row.dispatched_at is not None) == (1, None, True)
    messages = await redis_messages("notifications")
    assert [(m["message_id"], m["actor_name"], m["kwargs"]) for m in messages] == [
        (f"outbox-{row.id}", "send_email", {"email_id": 42})
    ]


async def test_events_are_published_only_after_commit():
    # given a subscriber on the channel
    client = aioredis.from_url(get_settings().redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(live.notification_channel(7))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    try:
        # when one event is rolled back and one committed
        with pytest.raises(Boom):
            async with session_scope() as s:
                outbox.publish_event(s, live.notification_channel(7), note_event("rolled back"))
                raise Boom()
        async with session_scope() as s:
            outbox.publish_event(s, live.notification_channel(7), note_event("committed"))
        sent = await outbox.relay()
        # then
        received = []
        while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)) is not None:
            received.append(json.loads(message["data"]))
    finally:
        await pubsub.aclose()
        await client.aclose()
    assert sent == 1
    assert received == [note_event("committed").payload()]


async def test_concurrent_relays_dispatch_each_row_once():
    # given
    async with session_scope() as s:
        for i in range(60):
            outbox.enqueue_actor(s, "send_email", queue="notifications", email_id=i)
    # when
    sent = await asyncio.gather(*(outbox.relay(limit=25) for _ in range(6)))
    while (more := await outbox.relay()) > 0:
        sent.append(more)
    # then
    assert sum(sent) == 60
    assert [r.attempts for r in await outbox_rows()] == [1] * 60
    messages = await redis_messages("notifications")
    assert sorted(m["kwargs"]["email_id"] for m in messages) == list(range(60))


# --- Redis unreachable: delayed, never lost ----------------------------------------------------


async def test_relay_keeps_rows_pending_while_redis_is_unreachable_and_sends_them_later(monkeypatch):
    # given two committed jobs
    async with session_scope() as s:
        outbox.enqueue_actor(s, "send_email", queue="notifications", email_id=1)
        outbox.enqueue_actor(s, "send_email", queue="notifications", email_id=2)
    # when the broker points at a port where no Redis listens
    unreachable = RedisBroker(url=f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=1)
    monkeypatch.setattr(dramatiq.broker, "global_broker", unreachable)
    sent_during_outage = await outbox.relay()
    sent_again_during_outage = await outbox.relay()
    # then both rows stay pending; the first records the failures, the second is not tried out of order
    assert (sent_during_outage, sent_again_during_outage) == (0, 0)
    first, second = await outbox_rows()
    assert (first.dispatched_at, first.attempts) == (None, 2)
    assert first.last_error.startswith("ConnectionError: ")
    assert (second.dispatched_at, second.attempts, second.last_error) == (None, 0, None)
    assert await redis_messages("notifications") == []
    # when Redis is back
    monkeypatch.setattr(dramatiq.broker, "global_broker", workers.broker.broker)
    sent_after = await outbox.relay()
    # then nothing was lost
    assert sent_after == 2
    assert [(r.dispatched_at is not None, r.attempts) for r in await outbox_rows()] == [(True, 3), (True, 1)]
    assert [m["kwargs"] for m in await redis_messages("notifications")] == [{"email_id": 1}, {"email_id": 2}]


async def test_webhook_is_acknowledged_during_a_redis_outage_and_processed_after_it(monkeypatch, mailbox):
    # given a purchase, and Redis unreachable for the dispatcher
    raw, headers = await paid_webhook_for_a_new_purchase()
    unreachable = RedisBroker(url=f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=1)
    monkeypatch.setattr(dramatiq.broker, "global_broker", unreachable)
    # when the gateway delivers the webhook
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://test") as client:
        response = await client.post("/webhooks/sandbox", content=raw, headers=headers)
    # then it is acknowledged and stored, its job kept pending
    assert response.status_code == 200
    [row] = await outbox_rows()
    assert (row.target, row.dispatched_at, row.attempts) == ("process_webhook", None, 1)
    # when Redis comes back and the scheduler's sweep runs, then the worker
    monkeypatch.setattr(dramatiq.broker, "global_broker", workers.broker.broker)
    assert await outbox.relay() == 1
    await run_worker()
    # then the payment completed and the emails went out
    async with session_scope() as s:
        assert await s.scalar(select(Payment.status)) == "completed"
    assert sorted(m["To"] for m in mailbox()) == sorted(["ada@example.cm", get_settings().operator_email])


# --- re-queueing work lost with Redis -----------------------------------------------------------


async def _age(model, column, seconds: int) -> None:
    async with session_scope() as s:
        await s.execute(update(model).values({column: datetime.now(UTC) - timedelta(seconds=seconds)}))


async def test_requeue_stalled_work_requeues_an_unprocessed_inbox_row_and_it_gets_processed(mailbox):
    # given a stored webhook whose message was dispatched, then lost with Redis
    raw, headers = await paid_webhook_for_a_new_purchase()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://test") as client:
        assert (await client.post("/webhooks/sandbox", content=raw, headers=headers)).status_code == 200
    client = aioredis.from_url(get_settings().redis_url)
    await client.flushdb()  # Redis lost its data
    await client.aclose()
    # when it is not yet old enough
    fresh = await maintenance.requeue_stalled_work(older_than_seconds=120)
    # then nothing is re-queued
    assert fresh == {"webhooks": 0, "emails": 0, "refunds": 0}
    assert len(await outbox_rows()) == 1
    # when it is
    await _age(WebhookEvent, "received_at", 600)
    stalled = await maintenance.requeue_stalled_work(older_than_seconds=120)
    # then one new job for it, which the sweep dispatches and the worker applies
    assert stalled == {"webhooks": 1, "emails": 0, "refunds": 0}
    async with session_scope() as s:
        inbox_id = await s.scalar(select(WebhookEvent.id))
    jobs = [(r.target, r.payload, r.dispatched_at is None) for r in await outbox_rows()]
    assert jobs == [("process_webhook", {"inbox_id": inbox_id}, False), ("process_webhook", {"inbox_id": inbox_id}, True)]
    assert await outbox.relay() == 1
    await run_worker()
    async with session_scope() as s:
        assert await s.scalar(select(Payment.status)) == "completed"
        assert (await s.execute(select(WebhookEvent.result, WebhookEvent.processed_at.is_not(None)))).one() == (
            "completed", True)
    assert len(mailbox()) == 2
    # and once processed, it is never re-queued again
    await _age(WebhookEvent, "received_at", 600)
    await _age(Email, "created_at", 600)
    assert await maintenance.requeue_stalled_work(older_than_seconds=120) == {"webhooks": 0, "emails": 0, "refunds": 0}


async def test_requeue_stalled_work_requeues_an_unsent_email_and_it_is_sent_once(mailbox):
    # given an email stored and committed whose send job never reached a worker
    async with session_scope() as s:
        email_id = await notification.queue_email(
            s, dedupe_key="test:1", kind="payment_failed", to="ada@example.cm", template="payment_failed",
            context={"name": "Ada", "reference": "ODM-TEST-0001", "checkout_hint": "try again"},
        )
    await _age(Email, "created_at", 600)
    # when
    counts = await maintenance.requeue_stalled_work(older_than_seconds=120)
    sent = await outbox.relay()
    await run_worker()
    # then both jobs (the original and the re-queued one) ran; the mail went out once
    assert counts == {"webhooks": 0, "emails": 1, "refunds": 0}
    assert sent == 2
    [mail] = mailbox()
    assert (mail["To"], mail["Subject"]) == ("ada@example.cm", "Odim: payment for ODM-TEST-0001 did not go through")
    async with session_scope() as s:
        email = await s.get(Email, email_id)
    assert (email.sent_at is not None, email.attempts) == (True, 1)
    assert await maintenance.requeue_stalled_work(older_than_seconds=120) == {"webhooks": 0, "emails": 0, "refunds": 0}


async def test_purge_deletes_only_old_dispatched_rows():
    now = datetime.now(UTC)
    async with session_scope() as s:
        s.add_all([
            OutboxMessage(kind="actor", target="old", payload={}, dispatched_at=now - timedelta(days=8)),
            OutboxMessage(kind="actor", target="recent", payload={}, dispatched_at=now - timedelta(days=1)),
            OutboxMessage(kind="actor", target="pending", payload={}),
        ])
    assert await maintenance.purge_dispatched_outbox() == 1
    async with session_scope() as s:
        left = sorted((await s.scalars(select(OutboxMessage.target))).all())
    assert left == ["pending", "recent"]
