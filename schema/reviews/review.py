"""Reviews and ratings in GraphQL (rules in domain/reviews/review.py): the Review type, a provider's
rating summary, and the input, payload and error codes of ``submitReview``.

Customers and providers: ``submitReview`` (one mutation for both sides: the caller's side is the
customer's or the provider's of the named order or visit), ``myReviews`` (root fields:
schema/reviews/root.py); everyone: ``Provider.reviews`` (published customer reviews) and
``Provider.ratingSummary``, resolved by ``provider_reviews`` and ``provider_rating_summary`` below.
A provider's standing (strikes, suspension) is schema/providers/standing.py.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.reviews.errors import ReviewsErrorCode
from domain.reviews.review import RatingSummary as RatingSummaryView
from domain.shared.errors import CommonErrorCode
from models import Review as ReviewModel
from resolvers import reviews as review_resolvers
from resolvers.ids import encode_id
from schema.shared.common import coded_errors, error_code_enum, page_info


@strawberry.enum(description="Who wrote a review: the CUSTOMER (about the provider) or the PROVIDER (about the customer).")
class ReviewAuthorRole(Enum):
    CUSTOMER = "customer"
    PROVIDER = "provider"


@strawberry.type(description="A review: 1-5 stars and a text. Blind: unpublished (publishedAt null) until both sides "
                 "reviewed the order or visit or its review window closed; only its author (and admins) see it meanwhile.")
class Review:
    id: strawberry.ID
    rating: int = strawberry.field(description="1-5 stars.")
    text: str
    author_role: ReviewAuthorRole
    created_at: datetime
    published_at: datetime | None = strawberry.field(description="Null while the review is still blind.")
    service_request_id: strawberry.ID | None = strawberry.field(
        description="The reviewed order (only in `myReviews`; null in public lists).")
    booking_id: strawberry.ID | None = strawberry.field(
        description="The reviewed visit (only in `myReviews`; null in public lists).")

    @classmethod
    def of(cls, r: ReviewModel, *, with_subject: bool = False) -> Review:
        return cls(
            id=strawberry.ID(encode_id("Review", r.id)), rating=r.rating, text=r.text,
            author_role=ReviewAuthorRole(r.author_role), created_at=r.created_at, published_at=r.published_at,
            service_request_id=strawberry.ID(encode_id("ServiceRequest", r.service_request_id))
            if with_subject and r.service_request_id else None,
            booking_id=strawberry.ID(encode_id("Booking", r.booking_id)) if with_subject and r.booking_id else None,
        )


@strawberry.type
class ReviewEdge:
    cursor: str
    node: Review


@strawberry.type
class ReviewConnection:
    edges: list[ReviewEdge]
    page_info: relay.PageInfo


def review_connection(rows: list[tuple[ReviewModel, str]], has_next: bool, had_cursor: bool, *,
                      with_subject: bool = False) -> ReviewConnection:
    edges = [ReviewEdge(cursor=c, node=Review.of(r, with_subject=with_subject)) for r, c in rows]
    return ReviewConnection(edges=edges, page_info=page_info(edges, has_next=has_next, has_previous=had_cursor))


@strawberry.type(description="A provider's published customer reviews in figures.")
class RatingSummary:
    average: float = strawberry.field(description="Average stars, 2 decimals (0 when none).")
    count: int = strawberry.field(description="Published customer reviews.")
    distribution: list[int] = strawberry.field(description="Counts of 1, 2, 3, 4 and 5 stars, in that order.")

    @classmethod
    def of(cls, s: RatingSummaryView) -> RatingSummary:
        return cls(average=s.average, count=s.count, distribution=s.distribution)


ReviewErrorCode = error_code_enum("ReviewErrorCode", [
    CommonErrorCode.NOT_FOUND, CommonErrorCode.INVALID_ID, ReviewsErrorCode.NOT_REVIEWABLE,
    ReviewsErrorCode.REVIEW_WINDOW_CLOSED, ReviewsErrorCode.ALREADY_REVIEWED, ReviewsErrorCode.INVALID_RATING,
    CommonErrorCode.TOO_LONG, CommonErrorCode.REQUIRED, CommonErrorCode.INVALID_TRANSITION,
    CommonErrorCode.INVALID,
], description="NOT_REVIEWABLE: not completed, not paid, or a booking's order (review its visits); "
                 "REVIEW_WINDOW_CLOSED: more than `reviewWindowDays` after completion; ALREADY_REVIEWED: your side "
                 "already reviewed it; NOT_FOUND: no such order or visit of yours. Nothing is written on error.")


@strawberry.type
class ReviewError:
    field: str | None
    code: ReviewErrorCode
    message: str


@strawberry.input(description="Exactly one of `serviceRequestId` (a catalogue order) and `bookingId` (a visit).")
class SubmitReviewInput:
    service_request_id: strawberry.ID | None = None
    booking_id: strawberry.ID | None = None
    rating: int = strawberry.field(description="1-5 stars.")
    text: str | None = strawberry.field(default=None, description="At most 2,000 characters.")


@strawberry.type
class SubmitReviewPayload:
    review: Review | None
    errors: list[ReviewError]


def review_errors(errors) -> list[ReviewError]:
    return coded_errors(ReviewErrorCode, ReviewError, errors)


async def provider_reviews(info: strawberry.Info, provider_id: int, first: int | None,
                           after: str | None) -> ReviewConnection:
    """Provider.reviews: published customer reviews, newest first (one statement)."""
    rows, has_next = await review_resolvers.provider_reviews(info.context, provider_id, first=first, after=after)
    return review_connection(rows, has_next, bool(after))


async def provider_rating_summary(info: strawberry.Info, provider_id: int) -> RatingSummary:
    """Provider.ratingSummary (one statement)."""
    summary = await review_resolvers.rating_summary(info.context, provider_id)
    return RatingSummary.of(summary or RatingSummaryView(0.0, 0, [0, 0, 0, 0, 0]))
