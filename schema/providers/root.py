"""Root fields of providers: geosearch and ranked discovery, verification and availability, onboarding
applications, and (admins) standing under the two-strike policy."""

from __future__ import annotations

from typing import Annotated

import strawberry

from domain.providers import onboarding as onb
from resolvers.providers import discovery as discovery_resolvers
from resolvers.providers import onboarding as onb_resolvers
from resolvers.providers import provider as provider_resolvers
from resolvers.providers import standing as standing_resolvers
from schema.providers.discovery import (
    RankedProviderConnection,
    SearchProvidersInput,
    SetAcceptsUrgentInput,
    SetAcceptsUrgentPayload,
    accepts_urgent_errors,
    ranked_connection,
)
from schema.providers.onboarding import (
    ApplicationDocument,
    ApplicationStatus,
    ApproveProviderApplicationInput,
    ProviderApplication,
    ProviderApplicationConnection,
    ProviderApplicationEdge,
    ProviderApplicationPayload,
    RejectProviderApplicationInput,
    RemoveApplicationDocumentInput,
    RequestApplicationDocumentsInput,
    SaveProviderApplicationInput,
    SubmitProviderApplicationInput,
    UploadApplicationDocumentInput,
    UploadApplicationDocumentPayload,
    application_errors,
    application_payload,
)
from schema.providers.provider import (
    NearbyProviderConnection,
    Provider,
    SetAvailabilityInput,
    SetAvailabilityPayload,
    VerifyProviderInput,
    VerifyProviderPayload,
    nearby_connection,
    provider_errors,
)
from schema.providers.standing import (
    ProviderStanding,
    ProviderStandingConnection,
    ProviderStandingEdge,
    ProviderStandingPayload,
    ProviderStrike,
    RecordStrikeInput,
    RecordStrikePayload,
    ReinstateProviderInput,
    SuspendProviderInput,
    standing_errors,
)
from schema.shared.common import GeoPointInput, page_info


async def _provider(info: strawberry.Info, provider) -> Provider | None:
    if provider is None:
        return None
    view = await provider_resolvers.provider_view(info.context, provider.id)
    return Provider.of(view) if view else None


@strawberry.type
class Query:
    @strawberry.field(description="Verified, available providers within `radiusKm` (0 < r <= 100) of `near`, "
                      "nearest first; `first` at most 100 (default 20).")
    async def providers_nearby(
        self, info: strawberry.Info, near: GeoPointInput, radius_km: float, category: str | None = None,
        first: int | None = 20, after: str | None = None,
    ) -> NearbyProviderConnection:
        hits, has_next = await provider_resolvers.providers_nearby(
            info.context, latitude=near.latitude, longitude=near.longitude, radius_km=radius_km,
            category=category, first=first, after=after,
        )
        return nearby_connection(hits, has_next, after is not None)

    @strawberry.field(description="Ranked search: verified, available, non-suspended providers within `radiusKm` of "
                      "`near`, best first (distance, Bayesian rating, completed jobs, response time, cancellations; "
                      "weights are settings), with filters. Cached ~90 s per H3 cell; cursors are offsets in the "
                      "ranked list.")
    async def search_providers(self, info: strawberry.Info, input: SearchProvidersInput) -> RankedProviderConnection:
        page = await discovery_resolvers.search_providers(
            info.context, latitude=input.near.latitude, longitude=input.near.longitude, radius_km=input.radius_km,
            category=input.category, min_price_minor=input.min_price_minor, max_price_minor=input.max_price_minor,
            currency=input.currency, min_rating=input.min_rating, available_from=input.available_from,
            available_to=input.available_to, urgent=input.urgent, first=input.first, after=input.after,
        )
        return ranked_connection(page, input.after is not None)

    @strawberry.field(description="Your newest provider application (any status), or null: resume it on any "
                      "device signed in to the same account.")
    async def my_provider_application(self, info: strawberry.Info) -> ProviderApplication | None:
        view = await onb_resolvers.my_application(info.context)
        return ProviderApplication.of(view) if view else None

    @strawberry.field(description="Admin: applications of one status (default SUBMITTED), oldest submitted first; "
                      "`first` at most 100 (default 20).")
    async def provider_applications(
        self, info: strawberry.Info, status: ApplicationStatus = ApplicationStatus.SUBMITTED,
        first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 20, after: str | None = None,
    ) -> ProviderApplicationConnection:
        views, has_next = await onb_resolvers.application_queue(info.context, status=status.value, first=first,
                                                                 after=after)
        edges = [ProviderApplicationEdge(cursor=onb.encode_cursor(v.application), node=ProviderApplication.of(v))
                 for v in views]
        return ProviderApplicationConnection(edges=edges, page_info=page_info(edges, has_next=has_next,
                                                                              has_previous=after is not None))

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
class Mutation:
    @strawberry.mutation(description="Admin: mark a provider verified so that search finds it.")
    async def verify_provider(self, info: strawberry.Info, input: VerifyProviderInput) -> VerifyProviderPayload:
        r = await provider_resolvers.verify_provider(info.context, provider_id=input.provider_id)
        return VerifyProviderPayload(provider=await _provider(info, r.provider), errors=provider_errors(r.errors))

    @strawberry.mutation(description="Provider: set whether you take work now, and optionally where you are.")
    async def set_availability(self, info: strawberry.Info, input: SetAvailabilityInput) -> SetAvailabilityPayload:
        loc = input.location
        r = await provider_resolvers.set_availability(
            info.context, available=input.available, latitude=loc.latitude if loc else None,
            longitude=loc.longitude if loc else None,
        )
        return SetAvailabilityPayload(provider=await _provider(info, r.provider), errors=provider_errors(r.errors))

    @strawberry.mutation(description="Provider: say whether you take urgent jobs (the `urgent` search filter).")
    async def set_accepts_urgent(self, info: strawberry.Info, input: SetAcceptsUrgentInput) -> SetAcceptsUrgentPayload:
        r = await discovery_resolvers.set_accepts_urgent(info.context, accepts_urgent=input.accepts_urgent)
        return SetAcceptsUrgentPayload(
            accepts_urgent=r.accepts_urgent,
            errors=accepts_urgent_errors(r.errors),
        )

    @strawberry.mutation(description="Apply to become a provider, one step at a time (a draft is started on the "
                         "first save). Saves `progress`, so another device resumes where you stopped.")
    async def save_provider_application(
        self, info: strawberry.Info, input: SaveProviderApplicationInput,
    ) -> ProviderApplicationPayload:
        b = input.business
        a = input.service_area
        r = await onb_resolvers.save_step(
            info.context, step=input.step.value,
            business=onb.BusinessDetails(business_name=b.business_name, phone=b.phone, address=b.address,
                                         city=b.city, country_code=b.country_code,
                                         registration_number=b.registration_number) if b else None,
            categories=input.categories,
            center=(a.center.latitude, a.center.longitude) if a and a.center else None,
            radius_km=a.radius_km if a else None,
            polygon=[(p.latitude, p.longitude) for p in a.polygon] if a and a.polygon is not None else None,
            area_given=a is not None,
        )
        return application_payload(r)

    @strawberry.mutation(description="Upload a document to your application (multipart request: the file in the "
                         "`input.file` variable). PDF, JPEG or PNG only, checked from the bytes.")
    async def upload_application_document(
        self, info: strawberry.Info, input: UploadApplicationDocumentInput,
    ) -> UploadApplicationDocumentPayload:
        r = await onb_resolvers.upload_document(
            info.context, application_id=str(input.application_id) if input.application_id else None,
            kind=input.kind.value, file=input.file,
        )
        return UploadApplicationDocumentPayload(
            document=ApplicationDocument.of(r.document) if r.document else None,
            application=ProviderApplication.of(r.application) if r.application else None,
            errors=application_errors(r.errors),
        )

    @strawberry.mutation(description="Remove a document from your application (before you submit it).")
    async def remove_application_document(
        self, info: strawberry.Info, input: RemoveApplicationDocumentInput,
    ) -> ProviderApplicationPayload:
        r = await onb_resolvers.remove_document(info.context, document_id=str(input.document_id))
        return application_payload(r)

    @strawberry.mutation(description="Send your application for review. Needs business details, a category, a "
                         "service area, an ID card and a business registration: every gap is listed in `errors`.")
    async def submit_provider_application(
        self, info: strawberry.Info, input: SubmitProviderApplicationInput,
    ) -> ProviderApplicationPayload:
        return application_payload(await onb_resolvers.submit(
            info.context, application_id=str(input.application_id) if input.application_id else None))

    @strawberry.mutation(description="Admin: approve a submitted application: the applicant becomes a verified "
                         "provider (found by search when available) and is emailed.")
    async def approve_provider_application(
        self, info: strawberry.Info, input: ApproveProviderApplicationInput,
    ) -> ProviderApplicationPayload:
        return application_payload(await onb_resolvers.approve(info.context, application_id=str(input.application_id)))

    @strawberry.mutation(description="Admin: reject an application with a reason (emailed to the applicant).")
    async def reject_provider_application(
        self, info: strawberry.Info, input: RejectProviderApplicationInput,
    ) -> ProviderApplicationPayload:
        return application_payload(await onb_resolvers.reject(info.context, application_id=str(input.application_id),
                                                   reason=input.reason))

    @strawberry.mutation(description="Admin: ask the applicant for more documents (emailed); they upload and "
                         "submit again.")
    async def request_application_documents(
        self, info: strawberry.Info, input: RequestApplicationDocumentsInput,
    ) -> ProviderApplicationPayload:
        return application_payload(await onb_resolvers.request_documents(
            info.context, application_id=str(input.application_id), kinds=[k.value for k in input.kinds],
            message=input.message))

    @strawberry.mutation(description="Admins: record a strike against a provider; the second one suspends it "
                         "(emailed and audited).")
    async def record_strike(self, info: strawberry.Info, input: RecordStrikeInput) -> RecordStrikePayload:
        r = await standing_resolvers.record_strike(
            info.context, provider_id=input.provider_id, reason=input.reason,
            service_request_id=input.service_request_id, booking_id=input.booking_id, dispute_id=input.dispute_id,
        )
        return RecordStrikePayload(
            strike=ProviderStrike.of(r.strike) if r.strike else None,
            standing=ProviderStanding.of(r.provider) if r.provider else None, errors=standing_errors(r.errors),
        )

    @strawberry.mutation(description="Admins: suspend a provider (no new work, hidden from search; money under open "
                         "disputes stays held). Emailed and audited.")
    async def suspend_provider(self, info: strawberry.Info, input: SuspendProviderInput) -> ProviderStandingPayload:
        r = await standing_resolvers.suspend_provider(info.context, provider_id=input.provider_id, reason=input.reason)
        return ProviderStandingPayload(standing=ProviderStanding.of(r.provider) if r.provider else None,
                                       errors=standing_errors(r.errors))

    @strawberry.mutation(description="Admins: lift a suspension. Strikes stay on record; the count is kept unless "
                         "`resetStrikes`. Emailed and audited.")
    async def reinstate_provider(self, info: strawberry.Info, input: ReinstateProviderInput) -> ProviderStandingPayload:
        r = await standing_resolvers.reinstate_provider(info.context, provider_id=input.provider_id, note=input.note,
                                                      reset_strikes=input.reset_strikes)
        return ProviderStandingPayload(standing=ProviderStanding.of(r.provider) if r.provider else None,
                                       errors=standing_errors(r.errors))
