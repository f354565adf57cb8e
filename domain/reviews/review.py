"""Verified, blind reviews; provider rating aggregates; the two-strike policy (issue 7).

Reviews ("Reviews only from paying customers", issue 7)
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

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messaging import notification
from domain.shared import audit, pagination
from domain.shared.errors import DomainError, Forbidden, NotFound
from models import Booking, Dispute, Provider, ProviderStrike, Review, ServiceRequest, User
from models.db import session_scope
from settings import get_settings

log = structlog.get_logger(__name__)

MAX_TEXT = 2000
MAX_REASON = 2000


class NotReviewable(DomainError):
    code = "NOT_REVIEWABLE"


class ReviewWindowClosed(DomainError):
    code = "REVIEW_WINDOW_CLOSED"


class AlreadyReviewed(DomainError):
    code = "ALREADY_REVIEWED"


class ProviderSuspended(DomainError):
    """The provider is suspended (two strikes or an admin): it takes no new work."""

    code = "PROVIDER_SUSPENDED"
    field = "providerId"


class NotSuspended(DomainError):
    code = "NOT_SUSPENDED"
    field = "providerId"


class AlreadySuspended(DomainError):
    code = "ALREADY_SUSPENDED"
    field = "providerId"


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
        raise DomainError("Give 1 to 5 stars", field="rating", code="INVALID_RATING")
    text_ = (text_ or "").strip()
    if len(text_) > MAX_TEXT:
        raise DomainError(f"The {text_field} is limited to {MAX_TEXT} characters", field=text_field, code="TOO_LONG")
    return text_


async def _lock_provider(session: AsyncSession, provider_id: int) -> Provider:
    provider = await session.scalar(
        select(Provider).where(Provider.id == provider_id).with_for_update(key_share=True)
    )
    if provider is None:
        raise NotFound("No such provider", field="providerId")
    return provider


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
        provider = await _lock_provider(session, row.provider_id)
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
    unassigned = row.kind == "booking" or row.assigned_provider_id is None
    if unassigned and viewer is not None and (row.customer_user_id is None or row.customer_user_id != viewer.id):
        raise NotFound("No such order", field="serviceRequestId")
    if row.kind == "booking":
        raise NotReviewable("A booking's order is reviewed through its visits (bookingId)", field="serviceRequestId")
    if row.assigned_provider_id is None:
        raise NotReviewable("Nobody did this order yet", field="serviceRequestId")
    provider = await _lock_provider(session, row.assigned_provider_id)
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
        raise DomainError("Give either serviceRequestId or bookingId", field="serviceRequestId", code="REQUIRED")
    text_ = validate(rating, text_)
    subject = await lock_subject(session, service_request_id=service_request_id, booking_id=booking_id, viewer=actor)
    side = side_of(subject, actor)
    if subject.booking is not None and side == "customer":
        if subject.booking.status != "completed":
            reviewed = await session.scalar(select(Review.id).where(Review.booking_id == booking_id,
                                                                   Review.author_role == "customer"))
            if reviewed is not None:
                raise AlreadyReviewed("You already reviewed this", field="bookingId")
            raise NotReviewable("Only completed work can be reviewed", field="bookingId")
        # domain/bookings/booking.py imports this module: import it here, at call time (no import cycle).
        from domain.bookings import booking as booking_domain

        await booking_domain.review(session, booking_id, actor=actor, rating=rating, comment=text_, now=now)
        return await session.scalar(select(Review).where(Review.booking_id == booking_id,
                                                         Review.author_role == "customer"))
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
    await _check_flag(session, provider, now)


async def completed_jobs(session: AsyncSession, provider_id: int) -> int:
    """Completed catalogue orders assigned to the provider + its completed visits (one statement)."""
    return int(await session.scalar(text(
        "SELECT (SELECT count(*) FROM service_requests WHERE assigned_provider_id = :p AND status = 'completed'"
        " AND kind <> 'booking') + (SELECT count(*) FROM bookings WHERE provider_id = :p AND completed_at IS NOT NULL)"
    ), {"p": provider_id}))


async def _check_flag(session: AsyncSession, provider: Provider, now: datetime) -> None:
    settings = get_settings()
    low = provider.review_count > 0 and provider.rating < settings.rating_flag_threshold
    if low and provider.flagged_at is None:
        jobs = await completed_jobs(session, provider.id)
        if jobs < settings.rating_flag_min_jobs:
            return
        provider.flagged_at = now
        provider.flag_reason = (f"Average rating {provider.rating:.2f} below {settings.rating_flag_threshold} "
                                f"after {jobs} completed jobs")
        await audit.record(session, action="provider.flagged", subject_type="Provider", subject_id=provider.id,
                           details={"rating": provider.rating, "reviewCount": provider.review_count,
                                    "completedJobs": jobs}, actor_id=None, actor_role="system")
        await notification.queue_email(
            session, dedupe_key=f"provider_flagged:{provider.id}:{now.isoformat()}", kind="operator_alert",
            to=settings.operator_email, template="operator_alert",
            context={"subject": f"Provider flagged: {provider.display_name}",
                     "body": f"Provider {provider.id} ({provider.display_name}) was flagged for review: "
                             f"{provider.flag_reason}.\nSee flaggedProviders; record a strike or suspend it if needed."},
        )
    elif not low and provider.flagged_at is not None:
        provider.flagged_at = None
        provider.flag_reason = None
        await audit.record(session, action="provider.unflagged", subject_type="Provider", subject_id=provider.id,
                           details={"rating": provider.rating, "reviewCount": provider.review_count},
                           actor_id=None, actor_role="system")


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
            provider = await _lock_provider(session, provider_id)
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


def _cursor(at: datetime, ident: int) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{ident}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        at, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return pagination.timestamp(at), pagination.row_id(ident)
    except (ValueError, UnicodeDecodeError) as exc:
        raise pagination.InvalidCursor("Malformed cursor") from exc


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
        at, ident = _decode_cursor(after)
        stmt = stmt.where(or_(Review.published_at < at, and_(Review.published_at == at, Review.id < ident)))
    rows = (await session.scalars(stmt)).all()
    return [(r, _cursor(r.published_at, r.id)) for r in rows[:first]], len(rows) > first


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


# --- strikes, suspension, reinstatement (admins) ---------------------------------------------------


def _reason(value: str, field: str = "reason") -> str:
    value = (value or "").strip()
    if not value:
        raise DomainError("Say why", field=field, code="REASON_REQUIRED")
    if len(value) > MAX_REASON:
        raise DomainError(f"Limited to {MAX_REASON} characters", field=field, code="TOO_LONG")
    return value


async def _owner(session: AsyncSession, provider: Provider) -> User | None:
    return await session.get(User, provider.user_id) if provider.user_id is not None else None


async def _email_provider(session: AsyncSession, provider: Provider, template: str, key: str, **context) -> None:
    owner = await _owner(session, provider)
    if owner is None:
        return
    await notification.queue_email(
        session, dedupe_key=key, kind="provider_standing", to=owner.email, user_id=owner.id, template=template,
        context={"name": owner.full_name or provider.display_name, "business_name": provider.display_name, **context},
    )


def _clear_flag(provider: Provider) -> None:
    provider.flagged_at = None
    provider.flag_reason = None


@dataclass(frozen=True)
class StrikeOutcome:
    """The strike written, the provider after it, and whether this strike suspended it."""

    strike: ProviderStrike
    provider: Provider
    suspended_now: bool


async def _check_reference(
    session: AsyncSession, provider_id: int, service_request_id: int | None, booking_id: int | None,
    dispute_id: int | None,
) -> None:
    if sum(x is not None for x in (service_request_id, booking_id, dispute_id)) > 1:
        raise DomainError("Name at most one of serviceRequestId, bookingId, disputeId", field="bookingId",
                          code="INVALID")
    if service_request_id is not None:
        owner = await session.scalar(select(ServiceRequest.assigned_provider_id)
                                     .where(ServiceRequest.id == service_request_id))
        if owner != provider_id:
            raise NotFound("No such order of this provider", field="serviceRequestId")
    if booking_id is not None:
        owner = await session.scalar(select(Booking.provider_id).where(Booking.id == booking_id))
        if owner != provider_id:
            raise NotFound("No such visit of this provider", field="bookingId")
    if dispute_id is not None:
        owner = await session.scalar(select(ServiceRequest.assigned_provider_id)
                                     .join(Dispute, Dispute.service_request_id == ServiceRequest.id)
                                     .where(Dispute.id == dispute_id))
        if owner != provider_id:
            raise NotFound("No such dispute about this provider", field="disputeId")


async def record_strike(
    session: AsyncSession, provider_id: int, *, actor: User, reason: str, service_request_id: int | None = None,
    booking_id: int | None = None, dispute_id: int | None = None, now: datetime | None = None,
) -> StrikeOutcome:
    """An admin records a strike for a serious complaint (issue 7, "Two-strike policy"), optionally
    about one order, visit or dispute of this provider. The second strike suspends the provider in
    this transaction (``suspend``). Audited ``provider.strike_recorded``; the provider is emailed.
    Raises ``NotFound`` (provider, or a reference not about it), DomainError ``REASON_REQUIRED`` /
    ``TOO_LONG``; nothing is written on error."""
    now = now or datetime.now(UTC)
    reason = _reason(reason)
    provider = await _lock_provider(session, provider_id)
    await _check_reference(session, provider_id, service_request_id, booking_id, dispute_id)
    strike = ProviderStrike(provider_id=provider_id, reason=reason, service_request_id=service_request_id,
                            booking_id=booking_id, dispute_id=dispute_id, created_by_user_id=actor.id)
    session.add(strike)
    await session.flush()
    provider.strike_count += 1
    _clear_flag(provider)
    await audit.record(session, action="provider.strike_recorded", subject_type="Provider", subject_id=provider_id,
                       details={"strikeId": strike.id, "strikeCount": provider.strike_count})
    await _email_provider(session, provider, "provider_strike", f"provider_strike:{strike.id}",
                          reason=reason, strike_count=provider.strike_count)
    suspended_now = False
    if provider.strike_count >= 2 and not provider.suspended:
        await _suspend(session, provider, actor=actor, now=now, trigger="second_strike",
                       reason=f"Second strike: {reason}")
        suspended_now = True
    return StrikeOutcome(strike, provider, suspended_now)


async def _suspend(session: AsyncSession, provider: Provider, *, actor: User, now: datetime, trigger: str,
                   reason: str) -> None:
    provider.suspended = True
    provider.suspended_at = now
    provider.suspension_reason = reason[:MAX_REASON]
    _clear_flag(provider)
    await audit.record(session, action="provider.suspended", subject_type="Provider", subject_id=provider.id,
                       details={"trigger": trigger, "strikeCount": provider.strike_count})
    await _email_provider(session, provider, "provider_suspended",
                          f"provider_suspended:{provider.id}:{now.isoformat()}", reason=provider.suspension_reason)


async def suspend(session: AsyncSession, provider_id: int, *, actor: User, reason: str,
                  now: datetime | None = None) -> Provider:
    """An admin suspends a provider: no new work, hidden from search (``providers.suspended``).
    Audited ``provider.suspended``, emailed. Raises ``NotFound``, ``AlreadySuspended``, DomainError
    ``REASON_REQUIRED``/``TOO_LONG``. The caller invalidates discovery after commit."""
    reason = _reason(reason)
    provider = await _lock_provider(session, provider_id)
    if provider.suspended:
        raise AlreadySuspended("This provider is already suspended")
    await _suspend(session, provider, actor=actor, now=now or datetime.now(UTC), trigger="admin", reason=reason)
    return provider


async def reinstate(session: AsyncSession, provider_id: int, *, actor: User, note: str,
                    reset_strikes: bool = False, now: datetime | None = None) -> Provider:
    """An admin lifts a suspension (``note`` says why, required). Strikes stay on record; the count
    is kept (the next strike suspends again) unless ``reset_strikes``. Audited
    ``provider.reinstated``, emailed. Raises ``NotFound``, ``NotSuspended``, DomainError
    ``REASON_REQUIRED`` (field note) / ``TOO_LONG``. The caller invalidates discovery after commit."""
    note = _reason(note, "note")
    now = now or datetime.now(UTC)
    provider = await _lock_provider(session, provider_id)
    if not provider.suspended:
        raise NotSuspended("This provider is not suspended")
    provider.suspended = False
    provider.suspended_at = None
    provider.suspension_reason = None
    if reset_strikes:
        provider.strike_count = 0
    _clear_flag(provider)
    await audit.record(session, action="provider.reinstated", subject_type="Provider", subject_id=provider.id,
                       details={"strikeCount": provider.strike_count, "resetStrikes": reset_strikes})
    await _email_provider(session, provider, "provider_reinstated",
                          f"provider_reinstated:{provider.id}:{now.isoformat()}", note=note)
    return provider


async def strikes_of(session: AsyncSession, provider_id: int) -> list[ProviderStrike]:
    """A provider's strikes, newest first (one statement)."""
    return list((await session.scalars(
        select(ProviderStrike).where(ProviderStrike.provider_id == provider_id)
        .order_by(ProviderStrike.id.desc())
    )).all())


async def flagged_providers(
    session: AsyncSession, *, first: int, after: str | None = None
) -> tuple[list[tuple[Provider, str]], bool]:
    """The admins' queue: flagged providers, oldest flag first, ``first`` per page after ``after``, in
    one statement (index ix_providers_flagged). Raises ``InvalidCursor``."""
    stmt = (select(Provider).where(Provider.flagged_at.is_not(None))
            .order_by(Provider.flagged_at, Provider.id).limit(first + 1))
    if after:
        at, ident = _decode_cursor(after)
        stmt = stmt.where(or_(Provider.flagged_at > at, and_(Provider.flagged_at == at, Provider.id > ident)))
    rows = (await session.scalars(stmt)).all()
    return [(p, _cursor(p.flagged_at, p.id)) for p in rows[:first]], len(rows) > first


def ensure_not_suspended(provider: Provider | None) -> None:
    """Raise ``ProviderSuspended`` when ``provider`` is suspended (the work paths call it first, so
    the refusal says why)."""
    if provider is not None and provider.suspended:
        raise ProviderSuspended("This provider is suspended and takes no new work")

