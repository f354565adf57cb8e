"""Service requests (purchases) in GraphQL: tracking, timeline, admin list, status events, and the
inputs, payloads and error codes of the purchase and status mutations (root fields:
schema/orders/root.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.catalogue.errors import CatalogueErrorCode
from domain.identity.errors import IdentityErrorCode
from domain.orders import service_request as sr_domain
from domain.orders.errors import OrdersErrorCode
from domain.providers.errors import ProvidersErrorCode
from domain.shared.errors import CommonErrorCode
from models import ServiceRequest as ServiceRequestModel
from resolvers import loaders
from resolvers.ids import encode_id
from resolvers.money import refunds as refund_resolvers
from resolvers.orders import contract as contract_resolvers
from resolvers.orders import service_request as sr_resolvers
from resolvers.orders.service_request import ServiceRequestView
from schema.catalogue.services import Service
from schema.messaging.chat import Conversation
from schema.money.fees import FeeQuote
from schema.money.refunds import Receipt, Settlement
from schema.orders.contract import Contract, contract_or_none
from schema.orders.dispute import Dispute
from schema.providers.provider import Provider
from schema.shared.common import Money, coded_errors, error_code_enum


@strawberry.enum(description="Where a request is in the purchase flow.")
class ServiceRequestStatus(Enum):
    AWAITING_PAYMENT = "awaiting_payment"
    PAYMENT_CONFIRMED = "payment_confirmed"
    PENDING_CONTACT = "pending_contact"
    TEAM_ASSIGNED = "team_assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@strawberry.type
class TimelineEntry:
    status: ServiceRequestStatus
    status_label: str
    at: datetime
    note: str


@strawberry.type(description="Personal data of the customer: only for the owner, its provider and admins.")
class ServiceRequestCustomer:
    full_name: str
    email: str
    phone: str | None
    requirements: str


@strawberry.type
class ServiceRequest(relay.Node):
    id: relay.NodeID[int]
    reference: str = strawberry.field(description="Human-friendly reference, e.g. ODM-7K3Q-9XPA.")
    status: ServiceRequestStatus
    status_label: str
    next_step: str
    amount: Money
    created_at: datetime
    paid_at: datetime | None
    customer: ServiceRequestCustomer | None = strawberry.field(
        description="Null unless the caller may see personal data (owner, assigned provider, admin, signed guest link)."
    )
    affiliate_code: str | None
    _request_id: strawberry.Private[int]
    _service_id: strawberry.Private[int]
    _tier_id: strawberry.Private[int]
    _provider_id: strawberry.Private[int | None]
    _private: strawberry.Private[bool]
    _model: strawberry.Private[ServiceRequestModel]

    @classmethod
    def of(cls, view: ServiceRequestView) -> "ServiceRequest":
        r = view.model
        customer = (
            ServiceRequestCustomer(full_name=r.customer_name, email=r.customer_email, phone=r.customer_phone,
                                   requirements=r.requirements)
            if view.private else None
        )
        return cls(
            id=r.id, reference=r.reference, status=ServiceRequestStatus(r.status),
            status_label=sr_domain.STATUS_LABELS[r.status], next_step=sr_domain.NEXT_STEPS[r.status],
            amount=Money.of(r.amount_minor, r.currency), created_at=r.created_at, paid_at=r.paid_at,
            customer=customer, affiliate_code=r.affiliate_code if view.private else None,
            _request_id=r.id, _service_id=r.service_id, _tier_id=r.tier_id, _provider_id=r.assigned_provider_id,
            _private=view.private, _model=r,
        )

    @strawberry.field(description="Every status change, oldest first.")
    async def timeline(self, info: strawberry.Info) -> list[TimelineEntry]:
        rows = await loaders.timelines(info.context).load(self._request_id)
        return [
            TimelineEntry(status=ServiceRequestStatus(h.to_status), status_label=sr_domain.STATUS_LABELS[h.to_status],
                          at=h.created_at, note=h.note)
            for h in rows
        ]

    @strawberry.field
    async def service(self, info: strawberry.Info) -> Service | None:
        found = await loaders.services(info.context).load(self._service_id)
        return Service.of(found) if found else None

    @strawberry.field
    async def tier_name(self, info: strawberry.Info) -> str:
        tier = await loaders.tiers(info.context).load(self._tier_id)
        return tier.name if tier else ""

    @strawberry.field
    async def assigned_provider(self, info: strawberry.Info) -> Provider | None:
        if self._provider_id is None:
            return None
        view = await loaders.provider_views(info.context).load(self._provider_id)
        return Provider.of(view) if view else None

    @strawberry.field(description="The request's chat; null unless the caller may see the request's private "
                      "view. Only participants can read or post in it.")
    async def conversation(self, info: strawberry.Info) -> Conversation | None:
        if not self._private:
            return None
        found = await loaders.conversations_by_request(info.context).load(self._request_id)
        return Conversation.of(found) if found else None

    @strawberry.field(description="The customer's receipt once paid (lines, refunds, net paid); null before "
                      "payment and unless the caller may see the request's private view.")
    async def receipt(self, info: strawberry.Info) -> Receipt | None:
        if not self._private:
            return None
        view = await refund_resolvers.receipt(info.context, self._model)
        return Receipt.of(view) if view else None

    @strawberry.field(description="How the order's money splits (commission, provider share, affiliate, escrow "
                      "held): admins and the assigned provider only, null for anyone else.")
    async def settlement(self, info: strawberry.Info) -> Settlement | None:
        if not self._private:
            return None
        view = await refund_resolvers.settlement(info.context, self._model)
        return Settlement.of(view) if view else None

    @strawberry.field(description="The current version of the order's contract with its acceptances (made when a "
                      "provider is assigned); null before that and unless the caller may see the private view.")
    async def contract(self, info: strawberry.Info) -> Contract | None:
        if not self._private:
            return None
        return contract_or_none(await contract_resolvers.of_request(info.context, self._request_id))

    @strawberry.field(description="Disputes on this order, oldest first (private view only; empty otherwise).")
    async def disputes(self, info: strawberry.Info) -> list[Dispute]:
        if not self._private:
            return []
        rows = await loaders.disputes_by_request(info.context).load(self._request_id)
        return [Dispute.of(d, self._model.currency) for d in rows]

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        views = await sr_resolvers.service_request_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(v) if v else None for v in views]


@strawberry.type
class ServiceRequestEdge:
    cursor: str
    node: ServiceRequest


@strawberry.type
class ServiceRequestConnection:
    edges: list[ServiceRequestEdge]
    page_info: relay.PageInfo
    total_count: int


@strawberry.input
class ServiceRequestFilter:
    service_id: strawberry.ID | None = None
    status: ServiceRequestStatus | None = None
    created_from: datetime | None = strawberry.field(default=None, description="Inclusive, ISO 8601 with zone.")
    created_to: datetime | None = strawberry.field(default=None, description="Exclusive, ISO 8601 with zone.")
    assigned_provider_id: strawberry.ID | None = None


@strawberry.enum(description="What the request table is sorted by (then by id).")
class ServiceRequestSortField(Enum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    AMOUNT = "amount"
    STATUS = "status"


@strawberry.enum(description="Sort direction.")
class SortDirection(Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.input(description="Order of the request table: a field and a direction (default: newest first). A "
                  "cursor continues only the order it was made for (INVALID_CURSOR otherwise).")
class ServiceRequestOrder:
    field: ServiceRequestSortField = ServiceRequestSortField.CREATED_AT
    direction: SortDirection = SortDirection.DESC


@strawberry.type(description="A status change pushed to subscribers; carries no personal data.")
class ServiceRequestStatusEvent:
    id: strawberry.ID = strawberry.field(description="This event's id: pass the last one you saw as `after` (or "
                                         "`since`) to resume without gaps.")
    reference: str
    status: ServiceRequestStatus
    previous_status: ServiceRequestStatus | None
    status_label: str
    next_step: str
    note: str
    at: datetime

    @classmethod
    def of(cls, e: dict) -> "ServiceRequestStatusEvent":
        """From a stream payload (domain/orders/service_request.py ``status_event``)."""
        return cls(
            id=strawberry.ID(encode_id("ServiceRequestStatusEvent", e["id"])),
            reference=e["reference"], status=ServiceRequestStatus(e["status"]),
            previous_status=ServiceRequestStatus(e["previousStatus"]) if e.get("previousStatus") else None,
            status_label=sr_domain.STATUS_LABELS[e["status"]], next_step=sr_domain.NEXT_STEPS[e["status"]],
            note=e.get("note", ""), at=datetime.fromisoformat(e["at"]),
        )


PurchaseServiceErrorCode = error_code_enum("PurchaseServiceErrorCode", [
    CommonErrorCode.SERVICE_NOT_FOUND, CatalogueErrorCode.TIER_NOT_FOUND, CatalogueErrorCode.TIER_REQUIRED,
    CatalogueErrorCode.CURRENCY_NOT_OFFERED, CommonErrorCode.REQUIRED, IdentityErrorCode.INVALID_EMAIL,
    IdentityErrorCode.INVALID_PHONE, IdentityErrorCode.INVALID_NAME, CommonErrorCode.TOO_LONG,
    CatalogueErrorCode.INVALID_AFFILIATE_CODE, CommonErrorCode.IDEMPOTENCY_KEY_REUSED,
    OrdersErrorCode.GATEWAY_UNAVAILABLE, CommonErrorCode.RATE_LIMITED, OrdersErrorCode.PAYMENT_GATEWAY_ERROR,
    CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
], description="GATEWAY_UNAVAILABLE: the payment gateway is failing right now; retry in a little "
                              "while (nothing was written). PAYMENT_GATEWAY_ERROR: the gateway refused the checkout. "
                              "RATE_LIMITED: too many purchases from your account (or email); retry after the "
                              "HTTP Retry-After seconds (nothing was written).")


@strawberry.type
class PurchaseServiceError:
    field: str | None
    code: PurchaseServiceErrorCode
    message: str


@strawberry.input
class CustomerInput:
    full_name: str | None = None
    email: str | None = None
    phone: str | None = strawberry.field(default=None, description="International form, e.g. +237671234567.")
    requirements: str | None = strawberry.field(default=None, description="Free text, at most 5000 characters.")


@strawberry.input
class PurchaseServiceInput:
    service_id: strawberry.ID
    tier_id: strawberry.ID | None = strawberry.field(default=None, description="Required when the service has several tiers.")
    customer: CustomerInput | None = strawberry.field(default=None, description="Required for guests; optional when logged in.")
    affiliate_code: str | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retry-safe key (1-120 chars): the same key and input return the same purchase."
    )
    currency: str | None = strawberry.field(default=None, description="ISO 4217; defaults to the platform currency (XAF).")


@strawberry.type
class PurchaseServicePayload:
    service_request: ServiceRequest | None
    checkout_url: str | None = strawberry.field(description="Open it to pay (the gateway's hosted checkout page).")
    guest_access_token: str | None = strawberry.field(
        description="For guests: pass as `accessToken` to `serviceRequest` to see your own details (also emailed)."
    )
    fee_breakdown: FeeQuote | None = strawberry.field(
        default=None, description="The fee lines snapshotted on the order just made (what the customer pays)."
    )
    errors: list[PurchaseServiceError]


ServiceRequestErrorCode = error_code_enum("ServiceRequestErrorCode", [
    CommonErrorCode.NOT_FOUND, CommonErrorCode.INVALID_TRANSITION, OrdersErrorCode.CONTRACT_NOT_ACCEPTED,
    OrdersErrorCode.PROVIDER_NOT_ASSIGNABLE, ProvidersErrorCode.PROVIDER_SUSPENDED, CommonErrorCode.INVALID_ID,
    CommonErrorCode.TOO_LONG, CommonErrorCode.INVALID,
], description="CONTRACT_NOT_ACCEPTED: work cannot start (IN_PROGRESS) before the customer and the "
                 "provider both accept the order's current contract (`contract`, acceptContract); nothing changed. "
                 "PROVIDER_SUSPENDED: the provider is suspended (two strikes or an operator) and takes no new work.")


@strawberry.type
class ServiceRequestError:
    field: str | None
    code: ServiceRequestErrorCode
    message: str


@strawberry.input
class UpdateServiceRequestStatusInput:
    id: strawberry.ID
    status: ServiceRequestStatus
    note: str | None = None


@strawberry.type
class UpdateServiceRequestStatusPayload:
    service_request: ServiceRequest | None
    errors: list[ServiceRequestError]


@strawberry.input
class AssignProviderInput:
    service_request_id: strawberry.ID
    provider_id: strawberry.ID


@strawberry.type
class AssignProviderPayload:
    service_request: ServiceRequest | None
    errors: list[ServiceRequestError]


def purchase_errors(errors) -> list[PurchaseServiceError]:
    return coded_errors(PurchaseServiceErrorCode, PurchaseServiceError, errors)


def request_errors(errors) -> list[ServiceRequestError]:
    return coded_errors(ServiceRequestErrorCode, ServiceRequestError, errors)
