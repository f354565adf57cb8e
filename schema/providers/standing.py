"""A provider's standing under the two-strike policy in GraphQL (admins; rules in
domain/providers/standing.py): strikes, suspension, the flag for a low average, and the inputs,
payloads and error codes of ``recordStrike``, ``suspendProvider`` and ``reinstateProvider``. The
root fields (those three, ``flaggedProviders``, ``providerStanding``) are in schema/providers/root.py.
Admin mutations are audited as ``admin.<mutationName>`` by schema/audit.py; the domain adds
``provider.strike_recorded`` / ``provider.suspended`` / ``provider.reinstated`` rows.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from domain.providers.errors import ProvidersErrorCode
from domain.shared.errors import CommonErrorCode
from models import Provider as ProviderModel
from models import ProviderStrike as StrikeModel
from resolvers.ids import encode_id
from schema.shared.common import coded_errors, error_code_enum


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


def standing_errors(errors) -> list[ProviderStandingError]:
    return coded_errors(ProviderStandingErrorCode, ProviderStandingError, errors)
