"""Review and rating resolvers: authorise, decode ids, call domain/reviews/review.py.

Mutations run in their own transaction (``resolvers.errors.write``); after commit the outbox is
relayed (emails).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.reviews import review as review_domain
from domain.shared.errors import DomainError
from models import Review
from resolvers.context import Context
from resolvers.errors import PayloadError, bad_input, write
from resolvers.ids import optional_id
from resolvers.pagination import page_size


@dataclass
class ReviewResult:
    review: Review | None
    errors: list[PayloadError]


async def submit_review(
    ctx: Context, *, service_request_id: str | None, booking_id: str | None, rating: int, text: str | None,
) -> ReviewResult:
    """The caller (customer or provider of the order or visit) reviews it; see domain/reviews/review.py."""
    user = await ctx.require_user()

    async def op(session: AsyncSession) -> Review:
        return await review_domain.submit_review(
            session, actor=user, rating=rating, text_=text or "",
            service_request_id=optional_id(service_request_id, "ServiceRequest", field="serviceRequestId"),
            booking_id=optional_id(booking_id, "Booking", field="bookingId"),
        )

    review, errors = await write(op)
    return ReviewResult(review, errors)


async def provider_reviews(
    ctx: Context, provider_id: int, *, first: int | None, after: str | None
) -> tuple[list[tuple[Review, str]], bool]:
    """Published customer reviews of a provider (public), one statement per page."""
    try:
        size = page_size(first)
        async with ctx.db() as session:
            return await review_domain.provider_reviews(session, provider_id, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc


async def rating_summary(ctx: Context, provider_id: int) -> review_domain.RatingSummary | None:
    async with ctx.db() as session:
        return await review_domain.rating_summary(session, provider_id)


async def my_reviews(
    ctx: Context, *, received: bool, first: int | None, after: str | None
) -> tuple[list[tuple[Review, str]], bool]:
    """The caller's reviews (written: published or not; received: published only)."""
    user = await ctx.require_user()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            return await review_domain.my_reviews(session, user, received=received, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc
