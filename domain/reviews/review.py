"""Verified, blind reviews; provider rating aggregates; the two-strike policy.

Reviews ("Reviews only from paying customers")
-------------------------------------------------------
* A subject is a catalogue order (``service_requests`` of kind ``purchase``) or a visit (``bookings``).
  A booking's order (kind ``booking``) is reviewed through its visits.
* Its customer may review the provider, and its provider may review the customer, once each
  (unique per subject and side), only when the subject is COMPLETED and PAID (the order's
  ``paid_at`` is set), and only until ``completed_at + settings.review_window_days``.
  Refusals (typed, nothing written): ``NOT_REVIEWABLE`` (not completed, not paid, a booking's
  order), ``REVIEW_WINDOW_CLOSED``, ``ALREADY_REVIEWED``, ``NOT_FOUND`` (someone else's subject, so
  its existence is not revealed), ``INVALID_RATING`` (not 1-5), ``TOO_LONG`` (text over 2,000).
* Blind: a review stays unpublished (visible only to its author and admins) until both sides
  reviewed the subject (both are published in that transaction) or its window closes
  (``publish_due``, run by the scheduler and ``odim reviews publish-due``). Neither side can read
  the other's review before writing its own, so neither can retaliate.
* A visit's customer review is the visit's ``completed -> reviewed`` transition too
  (domain/bookings/booking.py ``review`` calls ``record``): one model of reviews for both mutations.

Rating aggregates
-----------------
Publishing a CUSTOMER review updates, in the same transaction and under the provider's row lock,
``providers.rating_<stars>`` (+1), ``review_count`` (+1) and ``rating`` (the average of the
published customer reviews, from the per-star counts, rounded to 2 decimals): exact, never a
running float. Provider reviews of customers do not count.

Two-strike policy
-----------------
* After an aggregate change, a provider whose average is below settings.rating_flag_threshold
  (3.5) with at least settings.rating_flag_min_jobs (10) completed jobs (completed catalogue orders
  assigned to it + its completed visits) gets ``flagged_at``/``flag_reason`` (once: an existing flag
  is kept), an audit row ``provider.flagged`` and an operator email. The flag is cleared when the
  average recovers to the threshold (``provider.unflagged``) or when an admin acts on the provider
  (strike, suspension, reinstatement); a later low average flags it again.
* ``record_strike`` (admin) adds a strike (reason, optional order/visit/dispute reference, audited
  ``provider.strike_recorded``, emailed to the provider); the second strike (``strike_count`` >= 2)
  suspends the provider in the same transaction.
* ``suspend`` / ``reinstate`` (admin): audited ``provider.suspended`` / ``provider.reinstated`` and
  emailed to the provider. Reinstatement keeps ``strike_count`` unless the admin asks to reset it
  (``reset_strikes``): by default a reinstated provider is on its last chance (its next strike
  suspends it again). Strikes are never deleted.
* Suspended = no new work: assignment (domain/orders/service_request.py), holds and take-overs
  (domain/bookings/booking.py) refuse it with ``ProviderSuspended`` (``PROVIDER_SUSPENDED``); search and
  substitution candidates already exclude it (``verified AND available AND NOT suspended``).
  Money is untouched: earnings of orders under an open dispute stay held (domain/money/payout.py).

Lock order (as everywhere, domain/bookings/booking.py ``lock``): provider -> order -> booking -> review.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.providers import locks, standing
from domain.reviews.errors import ReviewsErrorCode
from domain.shared import pagination
from domain.shared.errors import CommonErrorCode, DomainError, Forbidden, NotFound
from models import Booking, Provider, Review, ServiceRequest, User
from models.db import session_scope
from settings import get_settings

log = structlog.get_logger(__name__)

MAX_TEXT = 2000
MAX_REASON = 2000


class NotReviewable(DomainError):
    code = ReviewsErrorCode.NOT_REVIEWABLE


class ReviewWindowClosed(DomainError):
    code = ReviewsErrorCode.REVIEW_WINDOW_CLOSED


class AlreadyReviewed(DomainError):
    code = ReviewsErrorCode.ALREADY_REVIEWED


# --- reviews ---------------------------------------------------------------------------------------


@dataclass
class Subject:
    """What is reviewed, row-locked: an order (``booking`` None) or a visit (``booking`` set, ``order``
    its order if any). ``completed_at``: when the work was completed (None: not yet)."""

    provider: Provider
    order: ServiceRequest | None
    booking: Booking | None

    @property
    def customer_user_id(self) -> int | None:
        return self.booking.customer_user_id if self.booking is not None else self.order.customer_user_id

    @property
    def completed_at(self) -> datetime | None:
        return self.booking.completed_at if self.booking is not None else self.order.completed_at

    @property
    def completed(self) -> bool:
        if self.booking is not None:
            return self.booking.completed_at is not None and self.booking.status in (
                "completed", "reviewed", "disputed", "resolved")
        return self.order.status == "completed" and self.order.completed_at is not None

    @property
    def paid(self) -> bool:
        return self.order is not None and self.order.paid_at is not None and self.order.captured_minor > 0


def validate(rating: int, text_: str, *, text_field: str = "text") -> str:
    """The review's text, stripped. Raises DomainError ``INVALID_RATING`` (not 1-5, field rating) or
    ``TOO_LONG`` (over MAX_TEXT characters)."""
    if not isinstance(rating, int) or not 1 <= rating <= 5:
        raise DomainError("Give 1 to 5 stars", field="rating", code=ReviewsErrorCode.INVALID_RATING)
    text_ = (text_ or "").strip()
    if len(text_) > MAX_TEXT:
        raise DomainError(f"The {text_field} is limited to {MAX_TEXT} characters", field=text_field, code=CommonErrorCode.TOO_LONG)
    return text_


async def lock_subject(
    session: AsyncSession, *, service_request_id: int | None = None, booking_id: int | None = None,
    viewer: User | None = None,
) -> Subject:
    """The subject, locked provider -> order -> booking (``FOR NO KEY UPDATE``). Raises ``NotFound``
    (field serviceRequestId / bookingId) and ``NotReviewable`` (an order without a provider, or a
    booking's order; ``NotFound`` instead when ``viewer`` is given and is not the order's customer,
    so a stranger learns nothing about it)."""
    if booking_id is not None:
        row = (await session.execute(
            select(Booking.provider_id, Booking.service_request_id).where(Booking.id == booking_id)
        )).one_or_none()
        if row is None:
            raise NotFound("No such booking", field="bookingId")
        provider = await locks.lock_provider(session, row.provider_id)
        order = None
        if row.service_request_id is not None:
            order = await session.scalar(select(ServiceRequest).where(ServiceRequest.id == row.service_request_id)
                                         .with_for_update(key_share=True))
        booking = await session.scalar(select(Booking).where(Booking.id == booking_id).with_for_update(key_share=True))
        if booking.provider_id != provider.id or booking.service_request_id != row.service_request_id:
            # A take-over or a checkout moved it while we waited (only before completion): lock again.
            return await lock_subject(session, booking_id=booking_id)
        return Subject(provider, order, booking)
    row = (await session.execute(
        select(ServiceRequest.assigned_provider_id, ServiceRequest.kind, ServiceRequest.customer_user_id)
        .where(ServiceRequest.id == service_request_id)
    )).one_or_none()
    if row is None:
        raise NotFound("No such order", field="serviceRequestId")
    # Only catalogue purchases are reviewed as orders; a booking's order is reviewed through its visits.
    as_order = row.kind == "purchase"
    unassigned = not as_order or row.assigned_provider_id is None
    if unassigned and viewer is not None and (row.customer_user_id is None or row.customer_user_id != viewer.id):
        raise NotFound("No such order", field="serviceRequestId")
    if not as_order:
        raise NotReviewable("A booking's order is reviewed through its visits (bookingId)", field="serviceRequestId")
    if row.assigned_provider_id is None:
        raise NotReviewable("Nobody did this order yet", field="serviceRequestId")
    provider = await locks.lock_provider(session, row.assigned_provider_id)
    order = await session.scalar(select(ServiceRequest).where(ServiceRequest.id == service_request_id)
                                 .with_for_update(key_share=True))
    if order.assigned_provider_id != provider.id:
        return await lock_subject(session, service_request_id=service_request_id)
    return Subject(provider, order, None)


def side_of(subject: Subject, user: User) -> str:
    """``customer`` or ``provider``: the side ``user`` reviews from. Raises ``NotFound`` for anybody
    else (an admin: ``Forbidden``: operators do not review)."""
    if user.role == "admin":
        raise Forbidden("Operators do not write reviews")
    if subject.customer_user_id is not None and subject.customer_user_id == user.id:
        return "customer"
    if subject.provider.user_id is not None and subject.provider.user_id == user.id:
        return "provider"
    field = "bookingId" if subject.booking is not None else "serviceRequestId"
    raise NotFound("No such order" if subject.booking is None else "No such booking", field=field)


async def record(
    session: AsyncSession, subject: Subject, *, side: str, author: User, rating: int, text_: str,
    now: datetime | None = None,
) -> Review:
    """Write ``side``'s review of the locked ``subject`` and publish it with the other side's when
    that one exists (aggregates updated for the customer review). Raises ``NotReviewable`` (not
    completed or not paid), ``ReviewWindowClosed``, ``AlreadyReviewed``; the caller's transaction
    rolls back on error (nothing written)."""
    now = now or datetime.now(UTC)
    field = "bookingId" if subject.booking is not None else "serviceRequestId"
    if not subject.completed:
        raise NotReviewable("Only completed work can be reviewed", field=field)
    if not subject.paid:
        raise NotReviewable("Only paid work can be reviewed", field=field)
    closes_at = subject.completed_at + timedelta(days=get_settings().review_window_days)
    if now >= closes_at:
        raise ReviewWindowClosed(
            f"Reviews close {get_settings().review_window_days} days after completion", field=field)
    subject_filter = (Review.booking_id == subject.booking.id if subject.booking is not None
                      else Review.service_request_id == subject.order.id)
    existing = (await session.scalars(select(Review).where(subject_filter).with_for_update(key_share=True))).all()
    if any(r.author_role == side for r in existing):
        raise AlreadyReviewed("You already reviewed this", field=field)
    review = Review(
        service_request_id=None if subject.booking is not None else subject.order.id,
        booking_id=subject.booking.id if subject.booking is not None else None,
        author_role=side, author_user_id=author.id, provider_id=subject.provider.id,
        customer_user_id=subject.customer_user_id, rating=rating, text=text_, window_closes_at=closes_at,
    )
    session.add(review)
    await session.flush()
    others = [r for r in existing if r.published_at is None]
    if others:  # both sides reviewed: publish both now
        for r in (review, *others):
            await _publish(session, subject.provider, r, now)
    return review


class VisitReviews(Protocol):
    """How a visit's customer review is taken: implemented and registered by the bookings context
    (domain/bookings/hooks.py), because it moves the visit too."""

    async def customer_review(
        self, session: AsyncSession, subject: Subject, *, actor: User, rating: int, text_: str,
        now: datetime | None,
    ) -> Review:
        """Record the customer's review of the visit ``subject`` (locked) and move the visit. Raises the
        refusals of ``record`` and the visit's state machine."""
        ...


_visit_reviews: list[VisitReviews] = []


def register_visit_reviews(flow: VisitReviews) -> None:
    """Install the visits' review flow (the bookings context does, on import). Idempotent."""
    _visit_reviews[:] = [flow]


def visit_reviews() -> VisitReviews:
    """The registered visit review flow. Raises ``RuntimeError`` when the bookings context was not imported."""
    if not _visit_reviews:
        raise RuntimeError("no visit review flow registered: import domain.bookings")
    return _visit_reviews[0]


async def submit_review(
    session: AsyncSession, *, actor: User, rating: int, text_: str = "", service_request_id: int | None = None,
    booking_id: int | None = None, now: datetime | None = None,
) -> Review:
    """The caller reviews a completed, paid order (``service_request_id``) or visit (``booking_id``),
    exactly one of them; its side (customer or provider) is decided by who the caller is. A visit's
    customer review also moves the visit ``completed -> reviewed`` (domain/bookings/booking.py ``review``).
    Returns the review (unpublished unless the other side already reviewed). Raises the module's
    refusals (see the module doc) and DomainError ``REQUIRED`` when not exactly one id is given."""
    if (service_request_id is None) == (booking_id is None):
        raise DomainError("Give either serviceRequestId or bookingId", field="serviceRequestId", code=CommonErrorCode.REQUIRED)
    text_ = validate(rating, text_)
    subject = await lock_subject(session, service_request_id=service_request_id, booking_id=booking_id, viewer=actor)
    side = side_of(subject, actor)
    if subject.booking is not None and side == "customer":
        # A visit's customer review is also the visit's ``completed -> reviewed``: bookings' to make.
        return await visit_reviews().customer_review(
            session, subject, actor=actor, rating=rating, text_=text_, now=now
        )
    return await record(session, subject, side=side, author=actor, rating=rating, text_=text_, now=now)


async def _publish(session: AsyncSession, provider: Provider, review: Review, now: datetime) -> None:
    """Publish ``review`` (provider row locked by the caller); a customer review updates the
    aggregates and the flag."""
    review.published_at = now
    if review.author_role != "customer":
        return
    setattr(provider, f"rating_{review.rating}", getattr(provider, f"rating_{review.rating}") + 1)
    counts = [getattr(provider, f"rating_{n}") for n in range(1, 6)]
    provider.review_count = sum(counts)
    provider.rating = round(sum(n * c for n, c in zip(range(1, 6), counts, strict=True)) / provider.review_count, 2)
    await standing.check_flag(session, provider, now)


async def publish_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Publish unpublished reviews whose window closed (at most ``limit``), one provider per
    transaction (provider row locked first, reviews ``SKIP LOCKED``), so a review being written
    concurrently is left for the next run. Returns how many were published."""
    now = now or datetime.now(UTC)
    async with session_scope() as session:
        providers = (await session.scalars(
            select(Review.provider_id).where(Review.published_at.is_(None), Review.window_closes_at <= now)
            .group_by(Review.provider_id).order_by(Review.provider_id).limit(limit)
        )).all()
    published = 0
    for provider_id in providers:
        if published >= limit:
            break
        async with session_scope() as session:
            provider = await locks.lock_provider(session, provider_id)
            due = (await session.scalars(
                select(Review).where(Review.provider_id == provider_id, Review.published_at.is_(None),
                                     Review.window_closes_at <= now)
                .order_by(Review.id).limit(limit - published).with_for_update(skip_locked=True)
            )).all()
            for review in due:
                await _publish(session, provider, review, now)
            published += len(due)
    if published:
        log.info("reviews.published", count=published)
    return published


# --- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatingSummary:
    """``average`` stars (0 when none), ``count`` published customer reviews, ``distribution``:
    counts of 1..5 stars (index 0 = one star)."""

    average: float
    count: int
    distribution: list[int]


async def rating_summary(session: AsyncSession, provider_id: int) -> RatingSummary | None:
    """The provider's aggregates (one statement), or None for an unknown provider."""
    row = (await session.execute(select(
        Provider.rating, Provider.review_count, Provider.rating_1, Provider.rating_2, Provider.rating_3,
        Provider.rating_4, Provider.rating_5,
    ).where(Provider.id == provider_id))).one_or_none()
    if row is None:
        return None
    return RatingSummary(float(row.rating), row.review_count, [row.rating_1, row.rating_2, row.rating_3,
                                                               row.rating_4, row.rating_5])


async def provider_reviews(
    session: AsyncSession, provider_id: int, *, first: int, after: str | None = None
) -> tuple[list[tuple[Review, str]], bool]:
    """A provider's PUBLISHED customer reviews, newest publication first, ``first`` per page after
    cursor ``after``: ``([(review, cursor)], has_next)`` in one statement (index
    ix_reviews_provider_published). Raises ``InvalidCursor``."""
    stmt = (select(Review).where(Review.provider_id == provider_id, Review.author_role == "customer",
                                 Review.published_at.is_not(None))
            .order_by(Review.published_at.desc(), Review.id.desc()).limit(first + 1))
    if after:
        at, ident = pagination.decode_at(after)
        stmt = stmt.where(or_(Review.published_at < at, and_(Review.published_at == at, Review.id < ident)))
    rows = (await session.scalars(stmt)).all()
    return [(r, pagination.encode_at(r.published_at, r.id)) for r in rows[:first]], len(rows) > first


async def my_reviews(
    session: AsyncSession, user: User, *, received: bool, first: int, after: str | None = None
) -> tuple[list[tuple[Review, str]], bool]:
    """Reviews the user wrote (``received`` False: published or not, newest first), or the PUBLISHED
    reviews about the user (as a customer: its providers' reviews of it; as a provider: its customers'
    reviews). One statement per page. Raises ``InvalidCursor``."""
    if received:
        own_provider = select(Provider.id).where(Provider.user_id == user.id).scalar_subquery()
        where = and_(Review.published_at.is_not(None), or_(
            and_(Review.author_role == "provider", Review.customer_user_id == user.id),
            and_(Review.author_role == "customer", Review.provider_id == own_provider),
        ))
    else:
        where = Review.author_user_id == user.id
    stmt = select(Review).where(where).order_by(Review.id.desc()).limit(first + 1)
    if after:
        stmt = stmt.where(Review.id < pagination.decode("Review", after))
    rows = (await session.scalars(stmt)).all()
    return [(r, pagination.encode("Review", r.id)) for r in rows[:first]], len(rows) > first
