"""Reviews, ratings and the two-strike policy in GraphQL (issue 7; rules in domain/reviews/review.py).

Customers and providers: ``submitReview`` (one mutation for both sides: the caller's side is the
customer's or the provider's of the named order or visit), ``myReviews``; everyone:
``Provider.reviews`` (published customer reviews) and ``Provider.ratingSummary``. Admins:
``recordStrike``, ``suspendProvider``, ``reinstateProvider``, ``flaggedProviders``,
``providerStanding``. Admin mutations are audited as ``admin.<mutationName>`` by schema/audit.py; the
domain adds ``provider.strike_recorded`` / ``provider.suspended`` / ``provider.reinstated`` rows.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.providers.errors import ProvidersErrorCode
from domain.reviews.errors import ReviewsErrorCode
from domain.reviews.review import RatingSummary as RatingSummaryView
from domain.shared.errors import CommonErrorCode
from models import Provider as ProviderModel
from models import ProviderStrike as StrikeModel
from models import Review as ReviewModel
from resolvers import reviews as review_resolvers
from resolvers.ids import encode_id
from resolvers.providers import standing as standing_resolvers
from schema.common import coded_errors, error_code_enum, page_info


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


@strawberry.type(description="Admins: one strike recorded against a provider (never deleted).")
class ProviderStrike:
    id: strawberry.ID
    reason: str
    service_request_id: strawberry.ID | None
    booking_id: strawberry.ID | None
    dispute_id: strawberry.ID | None
    created_at: datetime

    @classmethod
    def of(cls, s: StrikeModel) -> ProviderStrike:
        return cls(
            id=strawberry.ID(encode_id("ProviderStrike", s.id)), reason=s.reason, created_at=s.created_at,
            service_request_id=strawberry.ID(encode_id("ServiceRequest", s.service_request_id))
            if s.service_request_id else None,
            booking_id=strawberry.ID(encode_id("Booking", s.booking_id)) if s.booking_id else None,
            dispute_id=strawberry.ID(encode_id("Dispute", s.dispute_id)) if s.dispute_id else None,
        )


@strawberry.type(description="Admins: a provider's standing under the two-strike policy.")
class ProviderStanding:
    provider_id: strawberry.ID
    display_name: str
    rating: float
    review_count: int
    strike_count: int = strawberry.field(description="Strikes counted towards suspension (the second suspends).")
    suspended: bool
    suspended_at: datetime | None
    suspension_reason: str | None
    flagged_at: datetime | None = strawberry.field(
        description="Set automatically when the average falls below the threshold after enough completed jobs.")
    flag_reason: str | None
    strikes: list[ProviderStrike] = strawberry.field(description="Newest first (only in `providerStanding` and "
                                                     "the strike mutations; empty in `flaggedProviders`).")

    @classmethod
    def of(cls, p: ProviderModel, strikes: list[StrikeModel] | None = None) -> ProviderStanding:
        return cls(
            provider_id=strawberry.ID(encode_id("Provider", p.id)), display_name=p.display_name, rating=float(p.rating),
            review_count=p.review_count, strike_count=p.strike_count, suspended=p.suspended,
            suspended_at=p.suspended_at, suspension_reason=p.suspension_reason, flagged_at=p.flagged_at,
            flag_reason=p.flag_reason, strikes=[ProviderStrike.of(s) for s in strikes or []],
        )


@strawberry.type
class ProviderStandingEdge:
    cursor: str
    node: ProviderStanding


@strawberry.type
class ProviderStandingConnection:
    edges: list[ProviderStandingEdge]
    page_info: relay.PageInfo


# --- errors and inputs -------------------------------------------------------------------------------


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


ProviderStandingErrorCode = error_code_enum("ProviderStandingErrorCode", [
    CommonErrorCode.NOT_FOUND, CommonErrorCode.INVALID_ID, ProvidersErrorCode.REASON_REQUIRED,
    CommonErrorCode.TOO_LONG, ProvidersErrorCode.ALREADY_SUSPENDED, ProvidersErrorCode.NOT_SUSPENDED,
    CommonErrorCode.INVALID,
], description="ALREADY_SUSPENDED / NOT_SUSPENDED: nothing to do; REASON_REQUIRED: say why; NOT_FOUND: "
                 "no such provider, or the named order, visit or dispute is not about it.")


@strawberry.type
class ProviderStandingError:
    field: str | None
    code: ProviderStandingErrorCode
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


@strawberry.input(description="A strike for a serious complaint, optionally about ONE order, visit or dispute of "
                  "this provider. The second strike suspends the provider.")
class RecordStrikeInput:
    provider_id: strawberry.ID
    reason: str
    service_request_id: strawberry.ID | None = None
    booking_id: strawberry.ID | None = None
    dispute_id: strawberry.ID | None = None


@strawberry.type
class RecordStrikePayload:
    strike: ProviderStrike | None
    standing: ProviderStanding | None
    errors: list[ProviderStandingError]


@strawberry.input
class SuspendProviderInput:
    provider_id: strawberry.ID
    reason: str = strawberry.field(description="Emailed to the provider.")


@strawberry.input
class ReinstateProviderInput:
    provider_id: strawberry.ID
    note: str = strawberry.field(description="Why; emailed to the provider.")
    reset_strikes: bool = strawberry.field(
        default=False, description="Reset the strike count to 0 (strikes stay on record). Default: keep it, so the "
        "provider's next strike suspends it again.")


@strawberry.type
class ProviderStandingPayload:
    standing: ProviderStanding | None
    errors: list[ProviderStandingError]


def _standing_errors(errors) -> list[ProviderStandingError]:
    return coded_errors(ProviderStandingErrorCode, ProviderStandingError, errors)


# --- roots ---------------------------------------------------------------------------------------------


@strawberry.type
class ReviewQuery:
    @strawberry.field(description="Reviews you wrote (`received` false: published or still blind), or the PUBLISHED "
                      "reviews about you (`received` true: by your providers as a customer, by your customers as a "
                      "provider). Newest first; `first` at most 100.")
    async def my_reviews(self, info: strawberry.Info, received: bool = False, first: int | None = 20,
                         after: str | None = None) -> ReviewConnection:
        rows, has_next = await review_resolvers.my_reviews(info.context, received=received, first=first, after=after)
        return review_connection(rows, has_next, bool(after), with_subject=True)

    @strawberry.field(description="Admins: providers flagged for review (low average after enough jobs), oldest "
                      "flag first.")
    async def flagged_providers(self, info: strawberry.Info, first: int | None = 20,
                                after: str | None = None) -> ProviderStandingConnection:
        rows, has_next = await standing_resolvers.flagged_providers(info.context, first=first, after=after)
        edges = [ProviderStandingEdge(cursor=c, node=ProviderStanding.of(p)) for p, c in rows]
        return ProviderStandingConnection(edges=edges, page_info=page_info(edges, has_next=has_next,
                                                                           has_previous=bool(after)))

    @strawberry.field(description="Admins: a provider's standing (strikes, suspension, flag); null for an unknown id.")
    async def provider_standing(self, info: strawberry.Info, provider_id: strawberry.ID) -> ProviderStanding | None:
        provider, strikes = await standing_resolvers.provider_standing(info.context, provider_id=provider_id)
        return ProviderStanding.of(provider, strikes) if provider is not None else None


@strawberry.type
class ReviewMutation:
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
                                   errors=coded_errors(ReviewErrorCode, ReviewError, r.errors))

    @strawberry.mutation(description="Admins: record a strike against a provider; the second one suspends it "
                         "(emailed and audited).")
    async def record_strike(self, info: strawberry.Info, input: RecordStrikeInput) -> RecordStrikePayload:
        r = await standing_resolvers.record_strike(
            info.context, provider_id=input.provider_id, reason=input.reason,
            service_request_id=input.service_request_id, booking_id=input.booking_id, dispute_id=input.dispute_id,
        )
        return RecordStrikePayload(
            strike=ProviderStrike.of(r.strike) if r.strike else None,
            standing=ProviderStanding.of(r.provider) if r.provider else None, errors=_standing_errors(r.errors),
        )

    @strawberry.mutation(description="Admins: suspend a provider (no new work, hidden from search; money under open "
                         "disputes stays held). Emailed and audited.")
    async def suspend_provider(self, info: strawberry.Info, input: SuspendProviderInput) -> ProviderStandingPayload:
        r = await standing_resolvers.suspend_provider(info.context, provider_id=input.provider_id, reason=input.reason)
        return ProviderStandingPayload(standing=ProviderStanding.of(r.provider) if r.provider else None,
                                       errors=_standing_errors(r.errors))

    @strawberry.mutation(description="Admins: lift a suspension. Strikes stay on record; the count is kept unless "
                         "`resetStrikes`. Emailed and audited.")
    async def reinstate_provider(self, info: strawberry.Info, input: ReinstateProviderInput) -> ProviderStandingPayload:
        r = await standing_resolvers.reinstate_provider(info.context, provider_id=input.provider_id, note=input.note,
                                                      reset_strikes=input.reset_strikes)
        return ProviderStandingPayload(standing=ProviderStanding.of(r.provider) if r.provider else None,
                                       errors=_standing_errors(r.errors))


async def provider_reviews(info: strawberry.Info, provider_id: int, first: int | None,
                           after: str | None) -> ReviewConnection:
    """Provider.reviews: published customer reviews, newest first (one statement)."""
    rows, has_next = await review_resolvers.provider_reviews(info.context, provider_id, first=first, after=after)
    return review_connection(rows, has_next, bool(after))


async def provider_rating_summary(info: strawberry.Info, provider_id: int) -> RatingSummary:
    """Provider.ratingSummary (one statement)."""
    summary = await review_resolvers.rating_summary(info.context, provider_id)
    return RatingSummary.of(summary or RatingSummaryView(0.0, 0, [0, 0, 0, 0, 0]))
