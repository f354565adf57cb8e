"""In-app notifications (domain/messaging/feed.py): written at commit under per-user locks, published through the
outbox with ``id``/``prev``, read back by ``notifications_since``; the GraphQL feed, unread count and
mark-read; and the hooks in the service request, booking, payout, dispute and escalation code."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from domain.bookings import booking as booking_domain
from domain.messaging import feed
from domain.money import payout as payout_domain
from domain.orders import dispute as dispute_domain
from domain.orders import escalation as escalation_domain
from domain.orders import payment as payment_domain
from domain.orders import service_request as sr_domain
from models import Booking, Notification, OutboxMessage, Payment, Provider, ServiceRequest, User
from models.db import session_scope
from resolvers.ids import encode_id
from tests.support import bookings as bf
from tests.support.contracts import accept_order
from tests.support.factories import make_provider, make_service, make_user
from tests.support.graphql_client import error_codes, gql, login
from tests.support.statements import count_statements

CHANNEL = "odim:notifications:{}"


# --- helpers ----------------------------------------------------------------------------------------


async def feed_rows(user_id: int | None = None) -> list[tuple]:
    """``(id, user_id, kind, title, body, subject_type, subject_id)`` of every notification (of one user)."""
    async with session_scope() as s:
        stmt = select(Notification.id, Notification.user_id, Notification.kind, Notification.title, Notification.body,
                      Notification.subject_type, Notification.subject_id).order_by(Notification.id)
        if user_id is not None:
            stmt = stmt.where(Notification.user_id == user_id)
        return [tuple(r) for r in (await s.execute(stmt)).all()]


async def feed_events(user_id: int | None = None) -> list[dict]:
    """Payloads of the notification events in the outbox (of one user's channel), in outbox order."""
    async with session_scope() as s:
        stmt = select(OutboxMessage).where(OutboxMessage.kind == "event", OutboxMessage.target.like("odim:notifications:%"))
        if user_id is not None:
            stmt = stmt.where(OutboxMessage.target == CHANNEL.format(user_id))
        return [r.payload for r in (await s.scalars(stmt.order_by(OutboxMessage.id))).all()]


async def users(n: int, role: str = "customer") -> list[User]:
    return [await make_user(f"{role}{i}@example.com", role=role, full_name=f"{role.title()} {i}") for i in range(n)]


# --- writing ----------------------------------------------------------------------------------------


async def test_notify_writes_at_commit_with_an_outbox_event_carrying_id_and_prev():
    # given two users
    ada, bob = await users(2)
    # when one transaction notifies Ada twice and Bob once, and a later one notifies Ada again
    async with session_scope() as s:
        await feed.notify(s, ada.id, kind="booking_status", title="Booking B1: Paid", body="Your booking B1 is paid.",
                          subject_type="Booking", subject_id=7)
        await feed.notify(s, bob.id, kind="payout", title="Payout po_1 paid", body="Paid.")
        await feed.notify(s, ada.id, kind="dispute", title="Dispute", body="Opened.", subject_type="Dispute", subject_id=3)
        assert await s.scalar(select(func.count()).select_from(Notification)) == 0  # nothing before commit
    async with session_scope() as s:
        await feed.notify(s, ada.id, kind="escalation", title="Later", body="Third for Ada.")
    # then the rows exist, and each event carries the row id and the previous id of the same user
    rows = await feed_rows()
    assert sorted((r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows) == sorted([
        (ada.id, "booking_status", "Booking B1: Paid", "Your booking B1 is paid.", "Booking", 7),
        (bob.id, "payout", "Payout po_1 paid", "Paid.", None, None),
        (ada.id, "dispute", "Dispute", "Opened.", "Dispute", 3),
        (ada.id, "escalation", "Later", "Third for Ada.", None, None),
    ])
    assert rows[-1][2] == "escalation"  # the later transaction's row comes last
    ada_ids = [r[0] for r in rows if r[1] == ada.id]
    bob_ids = [r[0] for r in rows if r[1] == bob.id]
    ada_events = await feed_events(ada.id)
    assert [(e["id"], e["prev"]) for e in ada_events] == [(ada_ids[0], 0), (ada_ids[1], ada_ids[0]), (ada_ids[2], ada_ids[1])]
    assert [(e["id"], e["prev"]) for e in await feed_events(bob.id)] == [(bob_ids[0], 0)]
    first = next(e for e in ada_events if e["kind"] == "booking_status")
    assert set(first) == {"id", "prev", "userId", "kind", "title", "body", "subjectType", "subjectId", "createdAt", "readAt"}
    assert (first["userId"], first["kind"], first["title"], first["body"], first["subjectType"], first["subjectId"],
            first["readAt"]) == (ada.id, "booking_status", "Booking B1: Paid", "Your booking B1 is paid.", "Booking", 7, None)
    assert datetime.fromisoformat(first["createdAt"]).utcoffset() == timedelta(0)


async def test_a_rolled_back_transaction_notifies_nobody():
    # given a user
    (ada,) = await users(1)
    # when a transaction notifies her and then fails
    with pytest.raises(RuntimeError):
        async with session_scope() as s:
            await feed.notify(s, ada.id, kind="payout", title="Payout", body="Paid.")
            raise RuntimeError("business rule failed")
    # then nothing was written, no event was queued, and the next commit of a new session writes nothing
    async with session_scope() as s:
        s.add(User(email="other@example.com", password_hash="x", full_name="Other", role="customer"))
    assert await feed_rows() == []
    assert await feed_events() == []


async def test_a_rolled_back_savepoint_drops_only_what_it_notified():
    # given a user
    ada, bob = await users(2)
    # when a transaction notifies Ada, then notifies Bob inside a savepoint that rolls back, then commits
    async with session_scope() as s:
        await feed.notify(s, ada.id, kind="payout", title="Kept", body="Outside the savepoint.")
        with pytest.raises(RuntimeError):
            async with s.begin_nested():
                await feed.notify(s, bob.id, kind="payout", title="Dropped", body="Inside the savepoint.")
                raise RuntimeError("savepoint fails")
        async with s.begin_nested():
            await feed.notify(s, ada.id, kind="payout", title="Kept too", body="Released savepoint.")
    # then only the notifications outside the failed savepoint exist
    assert [(r[1], r[3]) for r in await feed_rows()] == [(ada.id, "Kept"), (ada.id, "Kept too")]
    assert [e["title"] for e in await feed_events()] == ["Kept", "Kept too"]


async def test_notify_refuses_an_unknown_kind_or_a_half_subject_and_writes_nothing():
    (ada,) = await users(1)
    async with session_scope() as s:
        with pytest.raises(ValueError):
            await feed.notify(s, ada.id, kind="marketing", title="Sale", body="50 % off")
        with pytest.raises(ValueError):
            await feed.notify(s, ada.id, kind="payout", title="x", body="y", subject_type="Payout")
        with pytest.raises(ValueError):
            await feed.notify(s, ada.id, kind="payout", title="x", body="y", subject_type="Wallet", subject_id=1)
    assert await feed_rows() == []
    assert await feed_events() == []


async def test_a_commit_takes_the_same_statements_for_one_and_five_recipients():
    # given five users
    people = await users(5)
    counted = {}
    # when one transaction notifies one of them twice, and another notifies all five twice each
    for name, recipients in (("one", people[:1]), ("five", people)):
        with count_statements() as statements:
            async with session_scope() as s:
                for user in recipients:
                    await feed.notify(s, user.id, kind="payout", title="a", body="-")
                    await feed.notify(s, user.id, kind="payout", title="b", body="-")
        counted[name] = [" ".join(q.split()[:3]) for q in statements]
    # then both commits took the same five statements: the users' key-share locks, the advisory locks,
    # the newest ids, one insert of the notifications and one of their outbox events
    assert counted["one"] == counted["five"] == [
        "SELECT users.id FROM", "SELECT count(pg_advisory_xact_lock($1, u))", "SELECT users.id, (SELECT",
        "INSERT INTO notifications", "INSERT INTO outbox",
    ]
    assert len(await feed_events()) == 12


async def test_concurrent_writers_in_opposite_orders_never_deadlock_and_every_feed_stays_gapless():
    # given two users and a reader that polls Ada's feed with notifications_since while writers commit
    ada, bob = await users(2)
    writers = 50
    done = asyncio.Event()
    seen: list[dict] = []

    async def reader() -> None:
        last = 0
        while True:
            finished = done.is_set()
            async with session_scope() as s:
                rows = await feed.notifications_since(s, ada.id, last, 100)
            for row in rows:
                # the stream contract: nothing committed later ever gets a smaller id than what was read
                assert row["prev"] == last, (row, last)
                seen.append(row)
                last = row["id"]
            if finished and not rows:
                return
            await asyncio.sleep(0)

    async def writer(i: int) -> None:
        first, second = (ada, bob) if i % 2 == 0 else (bob, ada)
        async with session_scope() as s:
            await feed.notify(s, first.id, kind="payout", title=f"w{i} first", body="-")
            # the transaction does other work between the two calls (and yields to the other writers)
            await s.execute(update(User).where(User.id == first.id).values(full_name=f"Writer {i}"))
            await asyncio.sleep(0.01)
            await feed.notify(s, second.id, kind="payout", title=f"w{i} second", body="-")

    # when 50 transactions on separate connections each notify both users, in opposite orders
    reading = asyncio.create_task(reader())
    results = await asyncio.gather(*(writer(i) for i in range(writers)), return_exceptions=True)
    done.set()
    await reading
    # then every transaction committed (no deadlock), and each feed is a gapless chain in id order
    assert [r for r in results if r is not None] == []
    for user in (ada, bob):
        ids = [r[0] for r in await feed_rows(user.id)]
        assert len(ids) == writers
        events = await feed_events(user.id)
        assert [(e["id"], e["prev"]) for e in events] == list(zip(ids, [0, *ids[:-1]], strict=True))
    # and the concurrent reader saw every notification of Ada exactly once, in order
    assert [r["id"] for r in seen] == [r[0] for r in await feed_rows(ada.id)]


async def test_notifications_since_returns_the_published_payloads_oldest_first():
    # given five notifications for Ada and two for Bob, one of Ada's read
    ada, bob = await users(2)
    for i in range(5):
        async with session_scope() as s:
            await feed.notify(s, ada.id, kind="booking_status", title=f"n{i}", body=f"body {i}",
                              subject_type="Booking", subject_id=i + 1)
            if i < 2:
                await feed.notify(s, bob.id, kind="payout", title=f"b{i}", body="-")
    published = await feed_events(ada.id)
    async with session_scope() as s:
        await feed.mark_read(s, ada.id, ids=[published[1]["id"]], now=datetime(2026, 11, 22, 12, tzinfo=UTC))
    # when Ada's feed is read after her first notification, two at a time, and from the start
    async with session_scope() as s:
        page = await feed.notifications_since(s, ada.id, published[0]["id"], 2)
        everything = await feed.notifications_since(s, ada.id, 0, 100)
        nothing_new = await feed.notifications_since(s, ada.id, published[-1]["id"], 100)
        latest = await feed.latest_id(s, ada.id)
    # then the dicts are the published ones (readAt as it is now), in id order
    read = {**published[1], "readAt": "2026-11-22T12:00:00+00:00"}
    assert page == [read, published[2]]
    assert everything == [published[0], read, *published[2:]]
    assert nothing_new == []
    assert latest == published[-1]["id"]


# --- GraphQL ----------------------------------------------------------------------------------------

FEED = """
query Feed($first: Int, $after: String, $unreadOnly: Boolean! = false) {
  notifications(first: $first, after: $after, unreadOnly: $unreadOnly) {
    edges { cursor node { id kind title body subject subjectType createdAt readAt } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
  unreadNotificationCount
}
"""
SINCE = """
query Since($since: ID, $first: Int) {
  notificationsSince(since: $since, first: $first) { id kind title body subject subjectType readAt }
}
"""
MARK = """
mutation Mark($input: MarkNotificationsReadInput!) {
  markNotificationsRead(input: $input) { markedCount unreadCount errors { field code message } }
}
"""
NODE = """query Node($id: ID!) { node(id: $id) { id ... on Notification { title } } }"""


def gid(notification_id: int) -> str:
    return encode_id("Notification", notification_id)


async def seeded_feeds() -> tuple[User, User, list[int], list[int]]:
    """Ada with 5 notifications (booking subjects 1..5), Bob with 2; returns their ids oldest first."""
    ada, bob = await users(2)
    for i in range(5):
        async with session_scope() as s:
            await feed.notify(s, ada.id, kind="booking_status", title=f"Ada {i}", body=f"Booking {i} moved.",
                              subject_type="Booking", subject_id=i + 1)
            if i < 2:
                await feed.notify(s, bob.id, kind="payout", title=f"Bob {i}", body="Payout.")
    return ada, bob, [r[0] for r in await feed_rows(ada.id)], [r[0] for r in await feed_rows(bob.id)]


async def read_at(ids: list[int]) -> list[datetime | None]:
    async with session_scope() as s:
        rows = dict((await s.execute(select(Notification.id, Notification.read_at).where(Notification.id.in_(ids)))).all())
    return [rows[i] for i in ids]


async def test_the_feed_pages_your_own_notifications_newest_first(api_client):
    # given Ada's five notifications and Bob's two
    _, _, ada_ids, bob_ids = await seeded_feeds()
    token = await login(api_client, "customer0@example.com")
    # when Ada pages through her feed two at a time
    pages, after = [], None
    while True:
        body = await gql(api_client, FEED, {"first": 2, "after": after}, token=token)
        assert "errors" not in body, body
        conn = body["data"]["notifications"]
        pages.append([e["node"]["title"] for e in conn["edges"]])
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    # then she sees exactly her own, newest first, each once, with the subject's global id
    assert pages == [["Ada 4", "Ada 3"], ["Ada 2", "Ada 1"], ["Ada 0"]]
    first = (await gql(api_client, FEED, {"first": 1}, token=token))["data"]
    node = first["notifications"]["edges"][0]["node"]
    assert node == {"id": gid(ada_ids[4]), "kind": "BOOKING_STATUS", "title": "Ada 4", "body": "Booking 4 moved.",
                    "subject": encode_id("Booking", 5), "subjectType": "Booking", "createdAt": node["createdAt"],
                    "readAt": None}
    assert datetime.fromisoformat(node["createdAt"]).utcoffset() == timedelta(0)
    assert first["unreadNotificationCount"] == 5
    # and node() gives her own notification and null for Bob's
    mine = await gql(api_client, NODE, {"id": gid(ada_ids[0])}, token=token)
    theirs = await gql(api_client, NODE, {"id": gid(bob_ids[0])}, token=token)
    assert (mine["data"]["node"], theirs["data"]["node"]) == ({"id": gid(ada_ids[0]), "title": "Ada 0"}, None)


async def test_the_feed_needs_a_login(api_client):
    await seeded_feeds()
    for query, variables in ((FEED, {}), (SINCE, {}), (MARK, {"input": {"upTo": gid(1)}})):
        body = await gql(api_client, query, variables)
        assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert await read_at([1]) == [None]


async def test_mark_read_by_ids_marks_only_your_own_and_ignores_others_ids(api_client):
    # given Ada's and Bob's notifications
    _, _, ada_ids, bob_ids = await seeded_feeds()
    token = await login(api_client, "customer0@example.com")
    # when Ada marks two of hers and one of Bob's read
    body = await gql(api_client, MARK, {"input": {"ids": [gid(ada_ids[0]), gid(ada_ids[2]), gid(bob_ids[1])]}},
                     token=token)
    # then only her two are read; Bob's is untouched; the unread-only feed and the count agree
    assert body["data"]["markNotificationsRead"] == {"markedCount": 2, "unreadCount": 3, "errors": []}
    marked = await read_at(ada_ids + bob_ids)
    assert [m is not None for m in marked] == [True, False, True, False, False, False, False]
    unread = (await gql(api_client, FEED, {"unreadOnly": True}, token=token))["data"]
    assert [e["node"]["title"] for e in unread["notifications"]["edges"]] == ["Ada 4", "Ada 3", "Ada 1"]
    assert unread["unreadNotificationCount"] == 3
    # and marking the same ones again changes nothing
    again = await gql(api_client, MARK, {"input": {"ids": [gid(ada_ids[0])]}}, token=token)
    assert again["data"]["markNotificationsRead"] == {"markedCount": 0, "unreadCount": 3, "errors": []}
    assert await read_at([ada_ids[0]]) == [marked[0]]


async def test_mark_read_up_to_marks_your_older_ones_only(api_client):
    # given Ada's and Bob's notifications (Bob's are interleaved with Ada's first ones)
    _, _, ada_ids, bob_ids = await seeded_feeds()
    token = await login(api_client, "customer0@example.com")
    # when Ada marks read everything up to her third notification
    body = await gql(api_client, MARK, {"input": {"upTo": gid(ada_ids[2])}}, token=token)
    # then her first three are read, her last two and all of Bob's are not
    assert body["data"]["markNotificationsRead"] == {"markedCount": 3, "unreadCount": 2, "errors": []}
    assert [m is not None for m in await read_at(ada_ids + bob_ids)] == [True, True, True, False, False, False, False]


@pytest.mark.parametrize(("mark_input", "error"), [
    ({}, {"field": "ids", "code": "REQUIRED", "message": "Give the ids to mark read, or upTo"}),
    ({"ids": []}, {"field": "ids", "code": "REQUIRED", "message": "Give the ids to mark read, or upTo"}),
    ({"ids": ["not-an-id"]}, {"field": "ids", "code": "INVALID_ID", "message": "Not a Notification id"}),
    ({"upTo": encode_id("Booking", 3)}, {"field": "upTo", "code": "INVALID_ID", "message": "Not a Notification id"}),
    ({"ids": [encode_id("Notification", i) for i in range(101)]},
     {"field": "ids", "code": "TOO_MANY", "message": "At most 100 ids at once; use upTo for more"}),
])
async def test_a_refused_mark_read_returns_its_error_and_marks_nothing(api_client, mark_input, error):
    _, _, ada_ids, bob_ids = await seeded_feeds()
    token = await login(api_client, "customer0@example.com")
    body = await gql(api_client, MARK, {"input": mark_input}, token=token)
    assert body["data"]["markNotificationsRead"] == {"markedCount": 0, "unreadCount": 5, "errors": [error]}
    assert await read_at(ada_ids + bob_ids) == [None] * 7


async def test_notifications_since_gives_your_newer_notifications_oldest_first(api_client):
    # given Ada's five notifications and Bob's two
    _, _, ada_ids, _ = await seeded_feeds()
    token = await login(api_client, "customer0@example.com")
    # when Ada polls after her second notification, two at a time, and from the start
    page = await gql(api_client, SINCE, {"since": gid(ada_ids[1]), "first": 2}, token=token)
    everything = await gql(api_client, SINCE, {}, token=token)
    # then she gets her own newer ones oldest first
    assert page["data"]["notificationsSince"] == [
        {"id": gid(ada_ids[2]), "kind": "BOOKING_STATUS", "title": "Ada 2", "body": "Booking 2 moved.",
         "subject": encode_id("Booking", 3), "subjectType": "Booking", "readAt": None},
        {"id": gid(ada_ids[3]), "kind": "BOOKING_STATUS", "title": "Ada 3", "body": "Booking 3 moved.",
         "subject": encode_id("Booking", 4), "subjectType": "Booking", "readAt": None},
    ]
    assert [n["title"] for n in everything["data"]["notificationsSince"]] == [f"Ada {i}" for i in range(5)]
    # and a bad cursor or page size is a top-level error
    bad = await gql(api_client, SINCE, {"since": encode_id("Booking", 1)}, token=token)
    too_many = await gql(api_client, SINCE, {"first": 101}, token=token)
    assert (error_codes(bad), error_codes(too_many)) == (["INVALID_ID"], ["INVALID_PAGE_SIZE"])


# --- hooks ------------------------------------------------------------------------------------------


async def notifications_of(user: User, after: int = 0) -> list[tuple[str, str, str, str | None, int | None]]:
    """``(kind, title, body, subject_type, subject_id)`` of ``user``'s notifications with id > after."""
    return [(r[2], r[3], r[4], r[5], r[6]) for r in await feed_rows(user.id) if r[0] > after]


async def newest() -> int:
    async with session_scope() as s:
        return await s.scalar(select(func.coalesce(func.max(Notification.id), 0)))


async def bought_and_paid(customer: User | None) -> ServiceRequest:
    """A new 10,000 FCFA catalogue order bought by ``customer`` (None: a guest), paid through the
    payment path a webhook takes."""
    service, tiers = await make_service(name=f"Leak repair {secrets.token_hex(3)}", prices={"XAF": 10000})
    async with session_scope() as s:
        bought = await sr_domain.purchase_service(
            s, service_id=service.id, tier_id=tiers[0].id, user=customer,
            customer=None if customer else sr_domain.CustomerDetails("Bob Guest", "bob@example.com", "+237671234567"),
        )
    async with session_scope() as s:
        payment = await s.scalar(select(Payment).where(Payment.id == bought.payment.id).with_for_update())
        await payment_domain.apply_payment_status(s, payment, "succeeded", amount_minor=payment.amount_minor,
                                                  currency=payment.currency, event_id=f"evt_{payment.reference}")
    async with session_scope() as s:
        return await s.get(ServiceRequest, bought.service_request.id)


async def paid_purchase(customer: User | None) -> tuple[ServiceRequest, Provider, User]:
    """``(order, provider, provider's account)``: a paid order and a verified provider with an account."""
    provider_user = await make_user("eko@example.com", role="provider", full_name="Eko Mbappe")
    provider = await make_provider(user_id=provider_user.id)
    return await bought_and_paid(customer), provider, provider_user


async def completed_order(provider_id: int, admin: User, customer: User | None = None) -> int:
    """A paid order (by ``customer``, a guest when None), assigned to ``provider_id`` and completed by ``admin``."""
    order = await bought_and_paid(customer)
    async with session_scope() as s:
        await sr_domain.assign_provider(s, order.id, provider_id, actor=admin)
    await accept_order(order.id)  # both parties accept the contract (tests/orders/test_contracts.py)
    async with session_scope() as s:
        await sr_domain.update_status(s, order.id, "in_progress", actor=admin)
        await sr_domain.update_status(s, order.id, "completed", actor=admin)
    return order.id


async def test_service_request_status_changes_notify_customer_and_provider_but_not_the_actor():
    # given a customer with an account who bought and paid, an admin and a provider
    customer = await make_user("ada@example.com", full_name="Ada Nkem")
    admin = await make_user("ops@example.com", role="admin")
    request, provider, provider_user = await paid_purchase(customer)
    ref = request.reference
    # then the payment's system transitions told the customer
    assert await notifications_of(customer) == [
        ("service_request_status", f"Request {ref}: Payment confirmed", f"Your request {ref} is now: Payment confirmed.",
         "ServiceRequest", request.id),
        ("service_request_status", f"Request {ref}: We will contact you shortly",
         f"Your request {ref} is now: We will contact you shortly.", "ServiceRequest", request.id),
    ]
    mark = await newest()
    # when the admin assigns the provider, and the provider starts the work
    async with session_scope() as s:
        await sr_domain.assign_provider(s, request.id, provider.id, actor=admin)
    await accept_order(request.id)  # both parties accept the contract (tests/orders/test_contracts.py)
    async with session_scope() as s:
        await sr_domain.update_status(s, request.id, "in_progress", actor=provider_user)
    # then customer and provider heard of the assignment, only the customer of the provider's own change,
    # and the admin of nothing
    assert await notifications_of(customer, mark) == [
        ("service_request_status", f"Request {ref}: A provider has been assigned",
         f"Your request {ref} is now: A provider has been assigned.", "ServiceRequest", request.id),
        ("service_request_status", f"Request {ref}: Work in progress", f"Your request {ref} is now: Work in progress.",
         "ServiceRequest", request.id),
    ]
    assert await notifications_of(provider_user, mark) == [
        ("service_request_status", f"Request {ref}: A provider has been assigned",
         f"Request {ref}, assigned to you, is now: A provider has been assigned.", "ServiceRequest", request.id),
    ]
    assert await notifications_of(admin) == []
    # and the events went out on each user's channel
    assert [e["title"] for e in await feed_events(provider_user.id)] == [f"Request {ref}: A provider has been assigned"]


async def test_a_guest_order_notifies_only_its_provider():
    # given a guest's paid order and an admin
    admin = await make_user("ops@example.com", role="admin")
    request, provider, provider_user = await paid_purchase(None)
    # when the admin assigns the provider
    async with session_scope() as s:
        await sr_domain.assign_provider(s, request.id, provider.id, actor=admin)
    # then only the provider's account has a notification (a guest has no feed)
    assert [(r[1], r[2]) for r in await feed_rows()] == [(provider_user.id, "service_request_status")]


async def test_booking_status_changes_notify_customer_and_provider_but_not_the_actor():
    # given a bookable provider and a customer who holds and pays a slot
    c = await bf.cast()
    held = await bf.hold(c.b, c.customer, bf.slot(1))
    after_hold = await feed_rows()
    await bf.checkout_and_pay(held.id, c.customer)
    paid_mark = await newest()
    # when the provider accepts it
    async with session_scope() as s:
        await booking_domain.change_status(s, held.id, "accepted", actor=c.b.provider_user, now=bf.slot(1) - timedelta(days=1))
    # then nobody heard of the hold; both heard of the payment; only the customer of the acceptance;
    # the order's own status changes are left to the booking's notifications
    ref = held.reference
    assert after_hold == []
    assert await notifications_of(c.customer) == [
        ("booking_status", f"Booking {ref}: Paid: waiting for the provider to accept",
         f"Your booking {ref} is now: Paid: waiting for the provider to accept.", "Booking", held.id),
        ("booking_status", f"Booking {ref}: Confirmed by the provider",
         f"Your booking {ref} is now: Confirmed by the provider.", "Booking", held.id),
    ]
    assert await notifications_of(c.b.provider_user) == [
        ("booking_status", f"Booking {ref}: Paid: waiting for the provider to accept",
         f"Booking {ref} with you is now: Paid: waiting for the provider to accept.", "Booking", held.id),
    ]
    assert [n[1] for n in await notifications_of(c.customer, paid_mark)] == [f"Booking {ref}: Confirmed by the provider"]
    assert {r[2] for r in await feed_rows()} == {"booking_status"}


async def test_payouts_sent_paid_and_failed_notify_the_provider():
    # given a provider with two completed orders paid out in two payouts
    admin = await make_user("ops@example.com", role="admin")
    provider_user = await make_user("eko@example.com", role="provider", full_name="Eko Mbappe")
    provider = await make_provider(user_id=provider_user.id)
    async with session_scope() as s:
        await payout_domain.register_destination(s, provider.id, kind="mobile_money", currency="XAF", country_code="CM",
                                                 holder_name="Eko Mbappe", phone="+237671234567", operator="mtn")
    payouts = []
    for _ in range(2):
        await completed_order(provider.id, admin)
        async with session_scope() as s:
            payouts.append(await payout_domain.create_payout_for_provider(s, provider.id, "XAF"))
    mark = await newest()
    # when the gateway accepts the first and pays it, and refuses the second
    async with session_scope() as s:
        await payout_domain.apply_payout_status(s, payouts[0].reference, "pending")
    async with session_scope() as s:
        await payout_domain.apply_payout_status(s, payouts[0].reference, "paid")
    async with session_scope() as s:
        await payout_domain.apply_payout_status(s, payouts[1].reference, "failed", failure_reason="wallet closed")
    # then the provider heard of each step (the gateway's reason is not repeated)
    first, second = payouts[0].reference, payouts[1].reference
    assert await notifications_of(provider_user, mark) == [
        ("payout", f"Payout {first} sent", f"Your payout {first} of 9,000 FCFA is on its way.", "Payout", payouts[0].id),
        ("payout", f"Payout {first} paid", f"Your payout {first} of 9,000 FCFA was paid.", "Payout", payouts[0].id),
        ("payout", f"Payout {second} failed",
         f"Your payout {second} of 9,000 FCFA failed. The money is back in your available balance and goes out with "
         "the next payout; check your payout destination.", "Payout", payouts[1].id),
    ]
    assert await notifications_of(admin, mark) == []


async def test_disputes_opened_and_resolved_notify_customer_provider_and_admins_but_not_the_actor():
    # given a customer's completed order, its provider and two admins
    customer = await make_user("ada@example.com", full_name="Ada Nkem")
    ops, other_ops = await make_user("ops@example.com", role="admin"), await make_user("ops2@example.com", role="admin")
    provider_user = await make_user("eko@example.com", role="provider", full_name="Eko Mbappe")
    provider = await make_provider(user_id=provider_user.id)
    order_id = await completed_order(provider.id, ops, customer)
    async with session_scope() as s:
        ref = (await s.get(ServiceRequest, order_id)).reference
    mark = await newest()
    # when the customer opens a dispute, and the first admin settles it with a full refund
    async with session_scope() as s:
        opened = await dispute_domain.open_dispute(s, order_id, actor=customer, reason="The tap still drips")
    async with session_scope() as s:
        await dispute_domain.resolve_dispute(s, opened.id, actor=ops, resolution="refund_full")
    # then everyone but the one who acted heard of each step
    opened_title, resolved_title = f"Dispute on {ref} opened", f"Dispute on {ref} resolved"
    assert await notifications_of(customer, mark) == [
        ("dispute", resolved_title, f"The dispute on your request {ref} is resolved. Your payment is refunded in full.",
         "Dispute", opened.id),
    ]
    assert await notifications_of(provider_user, mark) == [
        ("dispute", opened_title, f"A dispute was opened on request {ref}. Its payment to you is held until it is "
         "settled.", "Dispute", opened.id),
        ("dispute", resolved_title, f"The dispute on request {ref} was settled (refunded in full).", "Dispute", opened.id),
    ]
    assert await notifications_of(ops, mark) == [
        ("dispute", opened_title, f"Dispute {opened.id} opened on request {ref}: The tap still drips", "Dispute", opened.id),
    ]
    assert await notifications_of(other_ops, mark) == [
        ("dispute", opened_title, f"Dispute {opened.id} opened on request {ref}: The tap still drips", "Dispute", opened.id),
        ("dispute", resolved_title, f"Dispute {opened.id} on request {ref} resolved: refunded in full.", "Dispute",
         opened.id),
    ]


async def test_an_escalation_notifies_every_admin():
    # given two admins and a held booking
    c = await bf.cast()
    other_ops = await make_user("ops2@example.com", role="admin")
    held = await bf.hold(c.b, c.customer, bf.slot(1))
    # when an escalation is opened on it, and opened again while it is still open
    async with session_scope() as s:
        booking = await s.get(Booking, held.id)
        row = await escalation_domain.escalate(s, "customer_no_show", booking=booking, note="Nobody answered the door")
    async with session_scope() as s:
        again = await escalation_domain.escalate(s, "customer_no_show", booking=await s.get(Booking, held.id))
    # then each admin has exactly one notification; the customer and the provider none
    expected = [("escalation", f"Escalation: customer no show on {held.reference}", "Nobody answered the door",
                 "Escalation", row.id)]
    assert again is None
    assert await notifications_of(c.admin) == expected
    assert await notifications_of(other_ops) == expected
    assert await notifications_of(c.customer) == []
    assert await notifications_of(c.b.provider_user) == []
