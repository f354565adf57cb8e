"""Root fields of orders: purchases and their tracking (by reference, the admin list, status events by
query and the live ``serviceRequestStatusChanged``, served by shared fan-out too), status changes and
assignment, contracts, and disputes."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from domain.money import escrow
from domain.orders.service_request import CustomerDetails
from resolvers import live as live_resolvers
from resolvers.orders import contract as contract_resolvers
from resolvers.orders import dispute as dispute_resolvers
from resolvers.orders import service_request as sr_resolvers
from resolvers.pagination import page_size
from schema.money.fees import FeeQuote
from schema.orders.contract import (
    AcceptContractInput,
    AcceptContractPayload,
    Contract,
    accept_contract_errors,
    contract_or_none,
)
from schema.orders.dispute import (
    Dispute,
    DisputeConnection,
    DisputeStatus,
    OpenDisputeInput,
    OpenDisputePayload,
    ResolveDisputeInput,
    ResolveDisputePayload,
    dispute_connection,
    dispute_errors,
)
from schema.orders.service_request import (
    AssignProviderInput,
    AssignProviderPayload,
    PurchaseServiceInput,
    PurchaseServicePayload,
    ServiceRequest,
    ServiceRequestConnection,
    ServiceRequestEdge,
    ServiceRequestFilter,
    ServiceRequestOrder,
    ServiceRequestStatusEvent,
    SortDirection,
    UpdateServiceRequestStatusInput,
    UpdateServiceRequestStatusPayload,
    purchase_errors,
    request_errors,
)
from schema.shared.common import page_info
from schema.shared.live import events, shared_field


@strawberry.type
class Query:
    @strawberry.field(description="Track a request by reference. Personal data only for its owner, provider, "
                      "admins, or with the signed `accessToken` a guest received.")
    async def service_request(
        self, info: strawberry.Info, reference: str, access_token: str | None = None
    ) -> ServiceRequest | None:
        view = await sr_resolvers.service_request(
            info.context, reference=sr_resolvers.require_reference(reference), access_token=access_token
        )
        return ServiceRequest.of(view) if view else None

    @strawberry.field(description="Admins: all requests; customers: their own; providers: assigned to them. Newest "
                      "first unless `orderBy` says otherwise (created, updated, amount or status; keyset pages).")
    async def service_requests(
        self, info: strawberry.Info, filter: ServiceRequestFilter | None = None, first: int | None = 20,
        after: str | None = None, order_by: ServiceRequestOrder | None = None,
    ) -> ServiceRequestConnection:
        f = filter or ServiceRequestFilter()
        o = order_by or ServiceRequestOrder()
        page = await sr_resolvers.service_requests(
            info.context, service_id=f.service_id, status=f.status.value if f.status else None,
            created_from=f.created_from, created_to=f.created_to, assigned_provider_id=f.assigned_provider_id,
            first=first, after=after, sort=o.field.value, descending=o.direction == SortDirection.DESC,
        )
        edges = [ServiceRequestEdge(cursor=c, node=ServiceRequest.of(v)) for v, c in page.items]
        return ServiceRequestConnection(
            edges=edges,
            page_info=page_info(edges, has_next=page.has_next_page, has_previous=after is not None),
            total_count=page.total_count,
        )

    @strawberry.field(description="Status changes of a request after the event id `since` (from its creation when "
                      "null), oldest first, at most `first` (<= 100). Public, like `serviceRequestStatusChanged`.")
    async def service_request_status_events_since(
        self, info: strawberry.Info, reference: str, since: strawberry.ID | None = None, first: int | None = 100
    ) -> list[ServiceRequestStatusEvent]:
        size = page_size(first, 100)
        opened = await live_resolvers.open_service_request(info.context, reference, since, field="since")
        return [ServiceRequestStatusEvent.of(e) for e in await live_resolvers.since(opened, size)]

    @strawberry.field(description="A contract version by id: its customer, its provider and admins (a guest customer: "
                      "with its order's signed `accessToken`); null for everyone else.")
    async def contract(
        self, info: strawberry.Info, id: strawberry.ID, access_token: str | None = None
    ) -> Contract | None:
        found = await contract_resolvers.contract(info.context, contract_id=id, access_token=access_token)
        return contract_or_none(found)

    @strawberry.field(description="Admin: disputes newest first, optionally of one status; `first` at most 100.")
    async def disputes(
        self, info: strawberry.Info, status: DisputeStatus | None = None, first: int | None = 20,
        after: str | None = None,
    ) -> DisputeConnection:
        rows, has_next = await dispute_resolvers.disputes(
            info.context, status=status.value if status else None, first=first, after=after
        )
        return await dispute_connection(info, rows, has_next, after is not None)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Buy one tier of a service, logged in or as a guest; returns the request "
                         "and the checkout URL to pay it.")
    async def purchase_service(self, info: strawberry.Info, input: PurchaseServiceInput) -> PurchaseServicePayload:
        c = input.customer
        r = await sr_resolvers.purchase_service(
            info.context, service_id=input.service_id, tier_id=input.tier_id,
            customer=CustomerDetails(c.full_name, c.email, c.phone, c.requirements) if c else None,
            affiliate_code=input.affiliate_code, idempotency_key=input.idempotency_key, currency=input.currency,
        )
        return PurchaseServicePayload(
            service_request=ServiceRequest.of(r.request) if r.request else None, checkout_url=r.checkout_url,
            guest_access_token=r.guest_access_token, errors=purchase_errors(r.errors),
            fee_breakdown=FeeQuote.of(escrow.order_breakdown(r.request.model)) if r.request else None,
        )

    @strawberry.mutation(description="Admin (or the assigned provider for IN_PROGRESS/COMPLETED): move a request "
                         "on along the allowed transitions.")
    async def update_service_request_status(
        self, info: strawberry.Info, input: UpdateServiceRequestStatusInput
    ) -> UpdateServiceRequestStatusPayload:
        r = await sr_resolvers.update_status(info.context, request_id=input.id, status=input.status.value, note=input.note)
        return UpdateServiceRequestStatusPayload(
            service_request=ServiceRequest.of(r.request) if r.request else None, errors=request_errors(r.errors)
        )

    @strawberry.mutation(description="Admin: assign a verified provider (moves PENDING_CONTACT to TEAM_ASSIGNED).")
    async def assign_provider(self, info: strawberry.Info, input: AssignProviderInput) -> AssignProviderPayload:
        r = await sr_resolvers.assign_provider(
            info.context, request_id=input.service_request_id, provider_id=input.provider_id
        )
        return AssignProviderPayload(
            service_request=ServiceRequest.of(r.request) if r.request else None, errors=request_errors(r.errors)
        )

    @strawberry.mutation(description="The customer or the provider of an order or visit accepts the current version "
                         "of its contract as they read it (`sha256`); records who, when and from which IP. Work "
                         "(IN_PROGRESS) needs both acceptances. Accepting twice changes nothing.")
    async def accept_contract(self, info: strawberry.Info, input: AcceptContractInput) -> AcceptContractPayload:
        r = await contract_resolvers.accept_contract(
            info.context, contract_id=input.contract_id, sha256=input.sha256, access_token=input.access_token,
        )
        return AcceptContractPayload(contract=contract_or_none(r.contract), errors=accept_contract_errors(r.errors))

    @strawberry.mutation(description="The order's customer or an admin opens a dispute: no payout touches the "
                         "order's money until an admin resolves it.")
    async def open_dispute(self, info: strawberry.Info, input: OpenDisputeInput) -> OpenDisputePayload:
        r = await dispute_resolvers.open_dispute(
            info.context, service_request_id=input.service_request_id, reason=input.reason
        )
        return OpenDisputePayload(
            dispute=Dispute.of(r.dispute, r.request.model.currency) if r.dispute and r.request else None,
            service_request=ServiceRequest.of(r.request) if r.request else None, errors=dispute_errors(r.errors),
        )

    @strawberry.mutation(description="Admin: settle an open dispute by releasing the money to the provider, "
                         "refunding in full, or refunding part.")
    async def resolve_dispute(self, info: strawberry.Info, input: ResolveDisputeInput) -> ResolveDisputePayload:
        r = await dispute_resolvers.resolve_dispute(
            info.context, dispute_id=input.dispute_id, resolution=input.resolution.value,
            refund_amount=input.refund_amount, note=input.note,
        )
        return ResolveDisputePayload(
            dispute=Dispute.of(r.dispute, r.request.model.currency) if r.dispute and r.request else None,
            service_request=ServiceRequest.of(r.request) if r.request else None, errors=dispute_errors(r.errors),
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Status changes of the request with this reference: public (anyone with "
                             "the reference), no personal data. `after`: the `id` of the last event you saw. "
                             "NOT_FOUND for an unknown reference.")
    async def service_request_status_changed(
        self, info: strawberry.Info, reference: str, after: strawberry.ID | None = None
    ) -> AsyncGenerator[ServiceRequestStatusEvent, None]:
        opened = await live_resolvers.open_service_request(info.context, reference, after)
        async for event in events(opened, ServiceRequestStatusEvent.of):
            yield event


shared_field("serviceRequestStatusChanged",
             lambda ctx, a: live_resolvers.open_service_request(ctx, a["reference"], a.get("after")),
             ServiceRequestStatusEvent.of)
