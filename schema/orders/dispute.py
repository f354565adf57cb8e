"""Disputes in GraphQL: opened by an order's customer or an admin, resolved by an admin (root fields
``disputes``, ``openDispute`` and ``resolveDispute``: schema/orders/root.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from domain.money.errors import MoneyErrorCode
from domain.orders.errors import OrdersErrorCode
from domain.shared.errors import CommonErrorCode
from models import Dispute as DisputeModel
from resolvers import loaders
from resolvers.orders import contract as contract_resolvers
from resolvers.orders import dispute as dispute_resolvers
from resolvers.orders.service_request import ServiceRequestView
from schema.identity.user import UserRole
from schema.orders.contract import Contract, contract_or_none
from schema.shared.common import Money, coded_errors, error_code_enum, page_info

if TYPE_CHECKING:
    from schema.orders.service_request import ServiceRequest


@strawberry.enum
class DisputeStatus(Enum):
    OPEN = "open"
    RESOLVED = "resolved"


@strawberry.enum(description="RELEASE: the provider gets the money; REFUND_FULL: everything still refundable goes "
                 "back (an unfinished order is cancelled); REFUND_PARTIAL: `refundAmount` goes back, the rest is "
                 "released when the order is completed.")
class DisputeResolution(Enum):
    RELEASE = "release"
    REFUND_FULL = "refund_full"
    REFUND_PARTIAL = "refund_partial"


@strawberry.type(description="A dispute on an order. While one is open no payout touches the order's money.")
class Dispute(relay.Node):
    id: relay.NodeID[int]
    status: DisputeStatus
    reason: str
    opened_by_role: UserRole = strawberry.field(description="CUSTOMER (the order's owner) or ADMIN.")
    resolution: DisputeResolution | None
    refund_amount: Money | None = strawberry.field(description="What the resolution refunded, if anything.")
    resolution_note: str | None
    created_at: datetime
    resolved_at: datetime | None
    _request_id: strawberry.Private[int]

    @classmethod
    def of(cls, d: DisputeModel, currency: str) -> "Dispute":
        return cls(
            id=d.id, status=DisputeStatus(d.status), reason=d.reason, opened_by_role=UserRole(d.opened_by_role),
            resolution=DisputeResolution(d.resolution) if d.resolution else None,
            refund_amount=Money.of(d.refund_minor, currency) if d.refund_minor else None,
            resolution_note=d.resolution_note, created_at=d.created_at, resolved_at=d.resolved_at,
            _request_id=d.service_request_id,
        )

    @strawberry.field(description="The disputed order (whoever sees the dispute may see the order's private view).")
    async def service_request(
        self, info: strawberry.Info
    ) -> Annotated["ServiceRequest", strawberry.lazy("schema.orders.service_request")] | None:
        from schema.orders.service_request import ServiceRequest

        found = await loaders.service_requests(info.context).load(self._request_id)
        return ServiceRequest.of(ServiceRequestView(found, True)) if found else None

    @strawberry.field(description="Admins only (null for everyone else): the contract this dispute is settled on, the "
                      "latest version both parties accepted (a booking's order: its disputed visit's); null when none "
                      "was accepted by both.")
    async def contract(self, info: strawberry.Info) -> Contract | None:
        return contract_or_none(await contract_resolvers.accepted_of_order(info.context, self._request_id))

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await dispute_resolvers.dispute_nodes(info.context, [int(i) for i in node_ids])
        out = []
        for d in found:
            request = await loaders.service_requests(info.context).load(d.service_request_id) if d else None
            out.append(cls.of(d, request.currency) if d and request else None)
        return out


async def disputes_of(info: strawberry.Info, rows: list[DisputeModel]) -> list[Dispute]:
    """Schema objects for dispute rows; the orders' currencies come through the request loader."""
    requests = await loaders.service_requests(info.context).load_many([d.service_request_id for d in rows])
    return [Dispute.of(d, r.currency) for d, r in zip(rows, requests, strict=True)]


@strawberry.type
class DisputeEdge:
    cursor: str
    node: Dispute


@strawberry.type
class DisputeConnection:
    edges: list[DisputeEdge]
    page_info: relay.PageInfo


async def dispute_connection(
    info: strawberry.Info, rows: list[tuple[DisputeModel, str]], has_next: bool, had_cursor: bool
) -> DisputeConnection:
    nodes = await disputes_of(info, [d for d, _ in rows])
    edges = [DisputeEdge(cursor=c, node=n) for (_, c), n in zip(rows, nodes, strict=True)]
    return DisputeConnection(edges=edges, page_info=page_info(edges, has_next=has_next, has_previous=had_cursor))


DisputeErrorCode = error_code_enum("DisputeErrorCode", [
    CommonErrorCode.NOT_FOUND, OrdersErrorCode.NOT_DISPUTABLE, OrdersErrorCode.DISPUTE_ALREADY_OPEN,
    OrdersErrorCode.DISPUTE_NOT_OPEN, CommonErrorCode.REQUIRED, CommonErrorCode.TOO_LONG,
    CommonErrorCode.INVALID_AMOUNT, MoneyErrorCode.REFUND_EXCEEDS_CAPTURED, MoneyErrorCode.NOT_REFUNDABLE,
    CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
])


@strawberry.type
class DisputeError:
    field: str | None
    code: DisputeErrorCode
    message: str


def dispute_errors(errors) -> list[DisputeError]:
    return coded_errors(DisputeErrorCode, DisputeError, errors)


@strawberry.input
class OpenDisputeInput:
    service_request_id: strawberry.ID
    reason: str = strawberry.field(description="What went wrong, 1 to 2000 characters.")


@strawberry.type
class OpenDisputePayload:
    dispute: Dispute | None
    service_request: Annotated["ServiceRequest", strawberry.lazy("schema.orders.service_request")] | None
    errors: list[DisputeError]


@strawberry.input
class ResolveDisputeInput:
    dispute_id: strawberry.ID
    resolution: DisputeResolution
    refund_amount: int | None = strawberry.field(
        default=None, description="REFUND_PARTIAL only: minor units, positive and below what is refundable."
    )
    note: str | None = strawberry.field(default=None, description="Shown in the refund's reason; at most 2000 characters.")


@strawberry.type
class ResolveDisputePayload:
    dispute: Dispute | None
    service_request: Annotated["ServiceRequest", strawberry.lazy("schema.orders.service_request")] | None
    errors: list[DisputeError]
