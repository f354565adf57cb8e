"""Verified, blind reviews and rating aggregates (domain/reviews/review.py, schema/reviews/review.py).

Orders are written straight through the models in the state the review rules read (completed or
not, paid or not, completed when): the purchase and payment paths have their own tests. Visits go
through the real booking state machine (tests/support/bookings.py)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from domain.orders import service_request as sr
from domain.reviews import review as review_domain
from models import AuditEntry, Booking, Email, Provider, Review, ServiceRequest, User
from models.db import session_scope
from settings import get_settings
from tests.support.bookings import cast, drive, hold, slot
from tests.support.factories import make_provider, make_service, make_user, token_for
from tests.support.graphql_client import error_codes, gql
from tests.support.statements import count_statements

SUBMIT = """
mutation($input: SubmitReviewInput!) {
  submitReview(input: $input) {
    review { id rating text authorRole publishedAt serviceRequestId }
    errors { field code message }
  }
}
"""
MY_REVIEWS = """
query($received: Boolean!) {
  myReviews(received: $received) { edges { node { rating text authorRole publishedAt } } }
}
"""
PROVIDER_REVIEWS = """
query($id: ID!) {
  node(id: $id) {
    ... on Provider {
      reviews(first: 10) { edges { node { rating text authorRole serviceRequestId } } pageInfo { hasNextPage } }
      ratingSummary { average count distribution }
    }
  }
}
"""


# --- helpers -------------------------------------------------------------------------------------------


async def provider_with_account(email: str = "eko@example.com") -> tuple[Provider, User]:
    user = await make_user(email, role="provider", full_name="Eko Mbappe")
    return await make_provider(user_id=user.id, rating=0), user


async def order(
    provider: Provider, customer: User | None, *, status: str = "completed", paid: bool = True,
    completed_at: datetime | None = None, service=None,
) -> int:
    """An order of ``customer`` assigned to ``provider`` in ``status`` (paid or not), completed at
    ``completed_at`` (default: an hour ago when completed). Returns its id."""
    if service is None:
        service = await make_service(name=f"Leak repair {random.randrange(10**9)}", tiers=1)
    svc, tiers = service
    now = datetime.now(UTC)
    async with session_scope() as s:
        row = ServiceRequest(
            reference=sr.new_reference(), service_id=svc.id, tier_id=tiers[0].id,
            customer_user_id=customer.id if customer else None, customer_name="Ada Customer",
            customer_email=customer.email if customer else "guest@example.com", status=status,
            assigned_provider_id=provider.id, amount_minor=10000, currency="XAF", price_minor=10000,
            commission_bps=1000, captured_minor=10000 if paid else 0, paid_at=now - timedelta(days=2) if paid else None,
            completed_at=(completed_at or now - timedelta(hours=1)) if status == "completed" else None,
        )
        s.add(row)
        await s.flush()
        return row.id


def gid(kind: str, ident: int) -> str:
    from resolvers.ids import encode_id

    return encode_id(kind, ident)


async def reviews() -> list[tuple]:
    async with session_scope() as s:
        rows = (await s.scalars(select(Review).order_by(Review.id))).all()
    return [(r.author_role, r.rating, r.published_at is not None) for r in rows]


async def aggregates(provider_id: int) -> tuple:
    async with session_scope() as s:
        p = await s.get(Provider, provider_id)
        return (p.rating, p.review_count, [p.rating_1, p.rating_2, p.rating_3, p.rating_4, p.rating_5])


async def submit(user: User, order_id: int, rating: int, text: str = "", **kw) -> Review:
    async with session_scope() as s:
        return await review_domain.submit_review(s, actor=user, rating=rating, text_=text, service_request_id=order_id,
                                                 **kw)


# --- blind publication -------------------------------------------------------------------------------


async def test_both_sides_review_an_order_over_http_and_both_are_published_with_the_aggregates(api_client):
    # given a completed, paid order of Ada's done by Eko
    provider, eko = await provider_with_account()
    ada = await make_user("ada@example.com")
    order_id = await order(provider, ada)
    ada_token, eko_token = await token_for(ada), await token_for(eko)

    # when Ada reviews it
    body = await gql(api_client, SUBMIT, {"input": {"serviceRequestId": gid("ServiceRequest", order_id), "rating": 4,
                                                    "text": "  Quick and tidy  "}}, token=ada_token)
    # then her review is written but blind: Eko cannot read it, the provider's public list is empty
    payload = body["data"]["submitReview"]
    assert payload["errors"] == []
    assert {k: payload["review"][k] for k in ("rating", "text", "authorRole", "publishedAt", "serviceRequestId")} == {
        "rating": 4, "text": "Quick and tidy", "authorRole": "CUSTOMER", "publishedAt": None,
        "serviceRequestId": gid("ServiceRequest", order_id)}
    received = await gql(api_client, MY_REVIEWS, {"received": True}, token=eko_token)
    assert received["data"]["myReviews"]["edges"] == []
    public = await gql(api_client, PROVIDER_REVIEWS, {"id": gid("Provider", provider.id)})
    assert public["data"]["node"]["reviews"]["edges"] == []
    assert public["data"]["node"]["ratingSummary"] == {"average": 0.0, "count": 0, "distribution": [0, 0, 0, 0, 0]}
    mine = await gql(api_client, MY_REVIEWS, {"received": False}, token=ada_token)
    assert [e["node"]["publishedAt"] for e in mine["data"]["myReviews"]["edges"]] == [None]

    # when Eko reviews Ada
    body = await gql(api_client, SUBMIT, {"input": {"serviceRequestId": gid("ServiceRequest", order_id), "rating": 5,
                                                    "text": "Friendly customer"}}, token=eko_token)
    # then both are published at once and the provider's aggregates count Ada's review only
    assert body["data"]["submitReview"]["errors"] == []
    assert body["data"]["submitReview"]["review"]["publishedAt"] is not None
    assert await reviews() == [("customer", 4, True), ("provider", 5, True)]
    assert await aggregates(provider.id) == (4.0, 1, [0, 0, 0, 1, 0])
    public = await gql(api_client, PROVIDER_REVIEWS, {"id": gid("Provider", provider.id)})
    assert public["data"]["node"]["reviews"] == {
        "edges": [{"node": {"rating": 4, "text": "Quick and tidy", "authorRole": "CUSTOMER", "serviceRequestId": None}}],
        "pageInfo": {"hasNextPage": False}}
    assert public["data"]["node"]["ratingSummary"] == {"average": 4.0, "count": 1, "distribution": [0, 0, 0, 1, 0]}
    received = await gql(api_client, MY_REVIEWS, {"received": True}, token=ada_token)
    assert [(e["node"]["authorRole"], e["node"]["rating"]) for e in received["data"]["myReviews"]["edges"]] == [
        ("PROVIDER", 5)]


async def test_one_sided_review_stays_hidden_until_the_sweeper_publishes_it_when_the_window_closes():
    # given an order completed 13 days ago, reviewed by its customer only
    provider, _ = await provider_with_account()
    ada = await make_user("ada@example.com")
    completed = datetime.now(UTC) - timedelta(days=13)
    order_id = await order(provider, ada, completed_at=completed)
    await submit(ada, order_id, 2, "Came late")
    closes = completed + timedelta(days=get_settings().review_window_days)

    # when the publisher runs before the window closes
    assert await review_domain.publish_due(now=closes - timedelta(seconds=1)) == 0
    # then nothing is published
    assert await reviews() == [("customer", 2, False)]
    assert await aggregates(provider.id) == (0.0, 0, [0, 0, 0, 0, 0])

    # when it runs once the window closed (a moved clock), and again
    assert await review_domain.publish_due(now=closes) == 1
    assert await review_domain.publish_due(now=closes + timedelta(days=1)) == 0
    # then the review is published once and counted once
    assert await reviews() == [("customer", 2, True)]
    assert await aggregates(provider.id) == (2.0, 1, [0, 1, 0, 0, 0])


async def test_a_visit_reviewed_with_review_booking_writes_the_same_review_and_the_provider_side_publishes_both():
    # given a completed visit
    c = await cast()
    booking = await hold(c.b, c.customer, slot(1))
    await drive(c, booking.id, "completed")

    # when its customer reviews it through the booking mutation's domain path
    from domain.bookings import booking as booking_domain

    async with session_scope() as s:
        await booking_domain.review(s, booking.id, actor=c.customer, rating=3, comment="Fine")
    # then the visit is REVIEWED and one blind customer review exists
    async with session_scope() as s:
        row = await s.get(Booking, booking.id)
        assert (row.status, row.review_rating) == ("reviewed", 3)
    assert await reviews() == [("customer", 3, False)]

    # when the provider reviews the customer of that visit
    async with session_scope() as s:
        await review_domain.submit_review(s, actor=c.b.provider_user, rating=5, text_="Kind", booking_id=booking.id)
    # then both are published and the aggregates count the customer's 3 stars
    assert await reviews() == [("customer", 3, True), ("provider", 5, True)]
    assert (await aggregates(c.b.provider.id))[1:] == (1, [0, 0, 1, 0, 0])


# --- refusals ------------------------------------------------------------------------------------------


async def test_each_refusal_is_a_typed_error_and_writes_nothing(api_client):
    # given orders in every refusable state, and a stranger
    provider, _ = await provider_with_account()
    ada = await make_user("ada@example.com")
    eve = await make_user("eve@example.com")
    service = await make_service(name="Leak repair", tiers=1)
    done = await order(provider, ada, service=service)
    unpaid = await order(provider, ada, paid=False, service=service)
    running = await order(provider, ada, status="in_progress", service=service)
    old = await order(provider, ada, completed_at=datetime.now(UTC) - timedelta(days=14, seconds=1), service=service)
    ada_token, eve_token = await token_for(ada), await token_for(eve)

    async def attempt(order_id: int, token: str, rating: int = 4) -> list[dict]:
        body = await gql(api_client, SUBMIT, {"input": {"serviceRequestId": gid("ServiceRequest", order_id),
                                                        "rating": rating}}, token=token)
        return body["data"]["submitReview"]["errors"]

    # when / then: someone else's order is not found for the stranger
    assert await attempt(done, eve_token) == [
        {"field": "serviceRequestId", "code": "NOT_FOUND", "message": "No such order"}]
    # unpaid, not completed, the window closed, stars out of range
    assert await attempt(unpaid, ada_token) == [
        {"field": "serviceRequestId", "code": "NOT_REVIEWABLE", "message": "Only paid work can be reviewed"}]
    assert await attempt(running, ada_token) == [
        {"field": "serviceRequestId", "code": "NOT_REVIEWABLE", "message": "Only completed work can be reviewed"}]
    assert await attempt(old, ada_token) == [
        {"field": "serviceRequestId", "code": "REVIEW_WINDOW_CLOSED",
         "message": "Reviews close 14 days after completion"}]
    assert await attempt(done, ada_token, rating=6) == [
        {"field": "rating", "code": "INVALID_RATING", "message": "Give 1 to 5 stars"}]
    assert await reviews() == []
    # twice: the second is refused and the first stays as it was
    assert await attempt(done, ada_token) == []
    assert await attempt(done, ada_token, rating=1) == [
        {"field": "serviceRequestId", "code": "ALREADY_REVIEWED", "message": "You already reviewed this"}]
    assert await reviews() == [("customer", 4, False)]
    # anonymous callers are refused outright
    body = await gql(api_client, SUBMIT, {"input": {"serviceRequestId": gid("ServiceRequest", done), "rating": 4}})
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert await reviews() == [("customer", 4, False)]


async def test_review_booking_after_the_window_is_refused_and_the_visit_stays_completed():
    # given a visit completed 15 days ago
    c = await cast()
    booking = await hold(c.b, c.customer, slot(1))
    await drive(c, booking.id, "completed")
    async with session_scope() as s:
        (await s.get(Booking, booking.id)).completed_at = datetime.now(UTC) - timedelta(days=15)

    # when its customer reviews it
    from domain.bookings import booking as booking_domain

    try:
        async with session_scope() as s:
            await booking_domain.review(s, booking.id, actor=c.customer, rating=5)
        raise AssertionError("the review was accepted")
    except review_domain.ReviewWindowClosed as exc:
        refused = exc
    # then it is refused and nothing changed
    assert (refused.code, refused.field) == ("REVIEW_WINDOW_CLOSED", "bookingId")
    async with session_scope() as s:
        row = await s.get(Booking, booking.id)
        assert (row.status, row.review_rating) == ("completed", None)
    assert await reviews() == []


# --- aggregates ------------------------------------------------------------------------------------------


async def test_aggregates_match_a_recount_after_many_publications():
    # given 40 orders of two providers, reviewed with random stars, some by both sides, some by one
    rng = random.Random(7)
    first, _ = await provider_with_account("eko@example.com")
    second, _ = await provider_with_account("bona@example.com")
    ada = await make_user("ada@example.com")
    service = await make_service(name="Leak repair", tiers=1)
    completed = datetime.now(UTC) - timedelta(days=10)
    for i in range(40):
        provider = first if i % 3 else second
        order_id = await order(provider, ada, completed_at=completed, service=service)
        await submit(ada, order_id, rng.randint(1, 5), f"review {i}")
        if rng.random() < 0.5:
            async with session_scope() as s:
                owner = await s.get(User, provider.user_id)
            await submit(owner, order_id, rng.randint(1, 5))
    # when the windows close and the publisher runs
    await review_domain.publish_due(now=completed + timedelta(days=14))

    # then every review is published and each provider's aggregates equal a recount
    assert all(published for _, _, published in await reviews())
    async with session_scope() as s:
        for provider in (first, second):
            counts = dict((await s.execute(
                select(Review.rating, func.count()).where(Review.provider_id == provider.id,
                                                          Review.author_role == "customer",
                                                          Review.published_at.is_not(None))
                .group_by(Review.rating)
            )).all())
            distribution = [counts.get(n, 0) for n in range(1, 6)]
            total = sum(distribution)
            expected = round(sum(n * c for n, c in zip(range(1, 6), distribution, strict=True)) / total, 2)
            assert await aggregates(provider.id) == (expected, total, distribution)
            assert total == (26 if provider is first else 14)


async def test_provider_reviews_page_takes_one_statement_and_pages_newest_first():
    # given 3 published customer reviews
    provider, eko = await provider_with_account()
    ada = await make_user("ada@example.com")
    for stars in (5, 3, 4):
        order_id = await order(provider, ada)
        await submit(ada, order_id, stars)
        await submit(eko, order_id, 5)
    # when the first page of 2 is read, then the next
    async with session_scope() as s:
        with count_statements() as statements:
            page, has_next = await review_domain.provider_reviews(s, provider.id, first=2)
        assert len(statements) == 1
        rest, more = await review_domain.provider_reviews(s, provider.id, first=2, after=page[-1][1])
    # then newest first, without overlap
    assert ([r.rating for r, _ in page], has_next) == ([4, 3], True)
    assert ([r.rating for r, _ in rest], more) == ([5], False)


# --- the automatic flag --------------------------------------------------------------------------------


async def test_a_low_average_flags_the_provider_only_after_ten_completed_jobs():
    # given a provider with 9 completed orders, each reviewed 2 stars by its customer and published
    provider, eko = await provider_with_account()
    ada = await make_user("ada@example.com")
    service = await make_service(name="Leak repair", tiers=1)
    for _ in range(9):
        order_id = await order(provider, ada, service=service)
        await submit(ada, order_id, 2)
        await submit(eko, order_id, 5)
    # then it is not flagged: 9 jobs < 10
    async with session_scope() as s:
        p = await s.get(Provider, provider.id)
        assert (p.rating, p.review_count, p.flagged_at) == (2.0, 9, None)
        assert await s.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.action == "provider.flagged")) == 0

    # when a 10th completed order gets its 2-star review published
    order_id = await order(provider, ada, service=service)
    await submit(ada, order_id, 2)
    await submit(eko, order_id, 5)

    # then it is flagged once, audited and the operators are emailed
    async with session_scope() as s:
        p = await s.get(Provider, provider.id)
        assert p.flagged_at is not None
        assert p.flag_reason == "Average rating 2.00 below 3.5 after 10 completed jobs"
        audits = (await s.execute(select(AuditEntry.action, AuditEntry.subject_id, AuditEntry.details)
                                  .where(AuditEntry.action == "provider.flagged"))).all()
        assert audits == [("provider.flagged", str(provider.id),
                           {"rating": 2.0, "reviewCount": 10, "completedJobs": 10})]
        mails = (await s.execute(select(Email.kind, Email.to_address, Email.subject)
                                 .where(Email.kind == "operator_alert"))).all()
        assert mails == [("operator_alert", get_settings().operator_email,
                          "[Odim operations] Provider flagged: Eko Plumbing")]
        flagged_at = p.flagged_at
    # and an 11th low review keeps the first flag (once)
    order_id = await order(provider, ada, service=service)
    await submit(ada, order_id, 1)
    await submit(eko, order_id, 5)
    async with session_scope() as s:
        assert (await s.get(Provider, provider.id)).flagged_at == flagged_at
        assert await s.scalar(select(func.count()).select_from(Email).where(Email.kind == "operator_alert")) == 1


async def test_erasing_a_customer_blanks_the_texts_of_its_reviews_but_keeps_the_stars():
    # given Ada's published review of a completed order
    provider, eko = await provider_with_account()
    ada = await make_user("ada@example.com")
    order_id = await order(provider, ada)
    await submit(ada, order_id, 4, "Ada from Bonapriso says thanks")
    await submit(eko, order_id, 5, "Kind")
    # when her account is erased
    from domain.operations import privacy

    async with session_scope() as s:
        await privacy.delete_customer_account(s, ada.id, by="admin")
    # then her review keeps its stars (the aggregates are unchanged) and loses its text; Eko's stays
    async with session_scope() as s:
        rows = (await s.execute(select(Review.author_role, Review.rating, Review.text).order_by(Review.id))).all()
    assert [tuple(r) for r in rows] == [("customer", 4, ""), ("provider", 5, "Kind")]
    assert await aggregates(provider.id) == (4.0, 1, [0, 0, 0, 1, 0])


async def test_a_customers_data_export_holds_her_reviews_and_only_published_ones_about_her():
    # given: Ada reviewed two orders and Eko the first back (published: both sides reviewed); Eko
    # also reviewed a third order Ada has not reviewed (unpublished: blind until the window closes)
    provider, eko = await provider_with_account()
    ada = await make_user("ada@example.com")
    first, second, third = [await order(provider, ada) for _ in range(3)]
    await submit(ada, first, 4, "On time")
    await submit(eko, first, 5, "Friendly host")
    await submit(ada, second, 2, "Left a mess")
    await submit(eko, third, 3, "Dog barked")  # hidden: Ada has not reviewed the third order
    from domain.operations import privacy

    # when
    async with session_scope() as s:
        data = await privacy.export_customer_data(s, ada.id)
    # then
    assert [(r["byMe"], r["authorRole"], r["rating"], r["text"], r["publishedAt"] is not None) for r in data["reviews"]] == [
        (True, "customer", 4, "On time", True),
        (False, "provider", 5, "Friendly host", True),
        (True, "customer", 2, "Left a mess", False),
    ]
    assert all(r["order"] and r["booking"] is None for r in data["reviews"])


async def test_the_scheduled_actor_and_the_cli_publish_reviews_whose_window_closed():
    # given: two one-sided reviews whose windows have closed (moved back in the database) and one
    # whose window is still open
    import subprocess
    import sys
    from pathlib import Path

    from sqlalchemy import update

    from workers.review import publish_due_reviews

    provider, _ = await provider_with_account()
    ada, bea = await make_user("ada@example.com"), await make_user("bea@example.com")
    closed = [await order(provider, ada), await order(provider, bea)]
    still_open = await order(provider, ada)
    await submit(ada, closed[0], 5, "Great")
    await submit(bea, closed[1], 3, "Fine")
    await submit(ada, still_open, 1, "Bad")

    async def close_window(order_id: int) -> None:
        async with session_scope() as s:
            await s.execute(update(Review).where(Review.service_request_id == order_id)
                            .values(window_closes_at=datetime.now(UTC) - timedelta(minutes=1)))

    # when: the scheduler's actor runs (its function, as the worker calls it) after the first closes
    await close_window(closed[0])
    await publish_due_reviews.fn.__wrapped__()  # the coroutine dramatiq runs on its event loop thread
    # then
    assert await reviews() == [("customer", 5, True), ("customer", 3, False), ("customer", 1, False)]
    # when: the operator runs the CLI after the second closes
    await close_window(closed[1])
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "cli", "reviews", "publish-due"],
                                   cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True)
    # then: one more is published, the open one stays blind, and the aggregates count both
    assert done.returncode == 0, done.stderr
    assert "reviews published: 1" in done.stdout
    assert await reviews() == [("customer", 5, True), ("customer", 3, True), ("customer", 1, False)]
    assert await aggregates(provider.id) == (4.0, 2, [0, 0, 1, 0, 1])
