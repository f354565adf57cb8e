"""What the bookings context plugs into the contexts below it, registered when domain.bookings is
imported:

* the ``booking`` order kind (domain/orders/kinds.py): a booking's order is moved by its visits;
* the visits' review flow (domain/reviews/review.py ``VisitReviews``): a customer's review of a
  visit is also the visit's ``completed -> reviewed``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.bookings import booking
from domain.orders import kinds, service_request
from domain.reviews import review
from models import Payment, Review, ServiceRequest, User


class BookingOrderKind:
    """``kinds.OrderKind`` of a booking's order: its visits move it (domain/bookings/booking.py), so
    operators do not; the conversation, contract and reviews are each visit's."""

    name = "booking"
    moved_by_operators = False
    has_own_conversation = False
    has_own_contract = False
    notifies_status = False

    async def on_paid(
        self, session: AsyncSession, request: ServiceRequest, payment: Payment, *, amount: str
    ) -> str | None:
        """The held visit becomes ``paid`` and the order ``payment_confirmed``; when no visit is held any
        more (the hold expired first), nothing moves and the money is refunded on arrival."""
        if await booking.order_paid(session, request, amount=amount):
            return None
        return "the slot's hold was over"

    async def on_dispute_resolved(
        self, session: AsyncSession, request: ServiceRequest, *, actor_user_id: int | None, resolution: str, note: str,
    ) -> None:
        """The order's disputed visits move to ``resolved``."""
        await booking.dispute_resolved(session, request.id, actor_user_id=actor_user_id, note=note)

    async def on_cancelled(
        self, session: AsyncSession, request: ServiceRequest, *, actor_user_id: int | None, note: str,
    ) -> None:
        """The order moves to ``cancelled`` as the admin who settled the dispute."""
        await service_request.transition(
            session, request, "cancelled", actor_type="admin", actor_user_id=actor_user_id, note=note,
        )


class BookingVisitReviews:
    """``review.VisitReviews``: a visit's customer review through the booking state machine."""

    async def customer_review(
        self, session: AsyncSession, subject: review.Subject, *, actor: User, rating: int, text_: str,
        now: datetime | None,
    ) -> Review:
        """Only a ``completed`` visit is reviewed (``AlreadyReviewed`` once it was, ``NotReviewable``
        before); then ``booking.review`` moves it to ``reviewed`` and records the review."""
        visit = subject.booking
        assert visit is not None
        if visit.status != "completed":
            reviewed = await session.scalar(select(Review.id).where(Review.booking_id == visit.id,
                                                                   Review.author_role == "customer"))
            if reviewed is not None:
                raise review.AlreadyReviewed("You already reviewed this", field="bookingId")
            raise review.NotReviewable("Only completed work can be reviewed", field="bookingId")
        await booking.review(session, visit.id, actor=actor, rating=rating, comment=text_, now=now)
        return await session.scalar(select(Review).where(Review.booking_id == visit.id,
                                                         Review.author_role == "customer"))


BOOKING = BookingOrderKind()
kinds.register(BOOKING)
review.register_visit_reviews(BookingVisitReviews())
