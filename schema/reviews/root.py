"""Root fields of reviews: ``myReviews`` and ``submitReview`` (``Provider.reviews`` and
``Provider.ratingSummary`` are fields of the Provider type, schema/providers/provider.py)."""

from __future__ import annotations

import strawberry

from resolvers import reviews as review_resolvers
from schema.reviews.review import (
    Review,
    ReviewConnection,
    SubmitReviewInput,
    SubmitReviewPayload,
    review_connection,
    review_errors,
)


@strawberry.type
class Query:
    @strawberry.field(description="Reviews you wrote (`received` false: published or still blind), or the PUBLISHED "
                      "reviews about you (`received` true: by your providers as a customer, by your customers as a "
                      "provider). Newest first; `first` at most 100.")
    async def my_reviews(self, info: strawberry.Info, received: bool = False, first: int | None = 20,
                         after: str | None = None) -> ReviewConnection:
        rows, has_next = await review_resolvers.my_reviews(info.context, received=received, first=first, after=after)
        return review_connection(rows, has_next, bool(after), with_subject=True)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Review a completed, paid order (`serviceRequestId`) or visit (`bookingId`) "
                         "within the review window, once: as its customer (stars for the provider) or its provider "
                         "(stars for the customer). Blind until the other side reviews or the window closes. A visit's "
                         "customer review also moves it to REVIEWED (like `reviewBooking`).")
    async def submit_review(self, info: strawberry.Info, input: SubmitReviewInput) -> SubmitReviewPayload:
        r = await review_resolvers.submit_review(
            info.context, service_request_id=input.service_request_id, booking_id=input.booking_id,
            rating=input.rating, text=input.text,
        )
        return SubmitReviewPayload(review=Review.of(r.review, with_subject=True) if r.review else None,
                                   errors=review_errors(r.errors))
