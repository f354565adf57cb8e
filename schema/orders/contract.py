"""Contracts in GraphQL: the Contract node, its acceptances, acceptContract's input and payload (root
fields ``contract`` and ``acceptContract``: schema/orders/root.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.orders.errors import OrdersErrorCode
from domain.shared.errors import CommonErrorCode
from resolvers.bookings import lifecycle as booking_resolvers
from resolvers.orders import contract as contract_resolvers
from resolvers.orders import service_request as sr_resolvers
from resolvers.orders.contract import ContractView
from schema.shared.common import coded_errors, error_code_enum

if TYPE_CHECKING:
    from schema.bookings.types import Booking
    from schema.orders.service_request import ServiceRequest


@strawberry.enum
class ContractParty(Enum):
    CUSTOMER = "customer"
    PROVIDER = "provider"


@strawberry.type(description="One party's acceptance of one contract version.")
class ContractAcceptance:
    party: ContractParty
    accepted_at: datetime = strawberry.field(description="When it was accepted (UTC).")
    ip: str | None = strawberry.field(description="The IP address it was accepted from: admins only (null otherwise).")
    user_agent: str | None = strawberry.field(description="The client's User-Agent: admins only (null otherwise).")


@strawberry.type(description="A version of the contract of an order or a booking's visit: scope of work, price and fee "
                 "breakdown, schedule and cancellation terms, rendered from a template. Both the customer and the "
                 "provider must accept the current version (acceptContract with its `sha256`) before work starts; "
                 "any change of the terms makes a new version. Readable by its parties and admins only.")
class Contract(relay.Node):
    id: relay.NodeID[int]
    version: int = strawberry.field(description="1 for the first version; each change of the terms adds one.")
    body: str = strawberry.field(description="The exact text to show the user before accepting.")
    sha256: str = strawberry.field(description="Hex SHA-256 of `body`'s UTF-8 bytes: send it back to accept.")
    terms: JSON = strawberry.field(description="What `body` was rendered from: kind, reference, parties, scope, price "
                                   "(minor units and currency), schedule, cancellation.")
    created_at: datetime
    superseded_at: datetime | None = strawberry.field(description="Set once a newer version replaced this one.")
    current: bool = strawberry.field(description="Not superseded: the version to accept.")
    acceptances: list[ContractAcceptance] = strawberry.field(description="Customer first.")
    accepted_by_customer: bool
    accepted_by_provider: bool
    fully_accepted: bool = strawberry.field(description="Both parties accepted this version: work may start.")
    pdf_url: str = strawberry.field(description="Path of the PDF download (GET with the same bearer token).")
    _service_request_id: strawberry.Private[int | None]
    _booking_id: strawberry.Private[int | None]

    @strawberry.field(description="The catalogue order this contract is about (null for a visit's contract, and for "
                      "callers who may not see the order any more, e.g. the provider of a superseded version).")
    async def service_request(
        self, info: strawberry.Info
    ) -> Annotated["ServiceRequest", strawberry.lazy("schema.orders.service_request")] | None:
        from schema.orders.service_request import ServiceRequest

        if self._service_request_id is None:
            return None
        # Authorised again: a superseded version's provider may read its contract but not the order any more.
        [view] = await sr_resolvers.service_request_nodes(info.context, [self._service_request_id])
        return ServiceRequest.of(view) if view else None

    @strawberry.field(description="The visit this contract is about (null for an order's contract, and for callers "
                      "who may not see the visit any more).")
    async def booking(self, info: strawberry.Info) -> Annotated["Booking", strawberry.lazy("schema.bookings.types")] | None:
        from schema.bookings.types import Booking

        if self._booking_id is None:
            return None
        [found] = await booking_resolvers.booking_nodes(info.context, [self._booking_id])
        return Booking.of(found) if found else None

    @classmethod
    def of(cls, view: ContractView) -> "Contract":
        c = view.model
        parties = {a.party for a in view.acceptances}
        return cls(
            id=c.id, version=c.version, body=c.body, sha256=c.sha256, terms=c.terms, created_at=c.created_at,
            superseded_at=c.superseded_at, current=c.superseded_at is None,
            acceptances=[
                ContractAcceptance(party=ContractParty(a.party), accepted_at=a.accepted_at,
                                   ip=a.ip if view.admin else None, user_agent=a.user_agent if view.admin else None)
                for a in view.acceptances
            ],
            accepted_by_customer="customer" in parties, accepted_by_provider="provider" in parties,
            fully_accepted={"customer", "provider"} <= parties, pdf_url=contract_resolvers.pdf_path(c.id),
            _service_request_id=c.service_request_id, _booking_id=c.booking_id,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        views = await contract_resolvers.contract_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(v) if v else None for v in views]


def contract_or_none(view: ContractView | None) -> Contract | None:
    return Contract.of(view) if view is not None else None


AcceptContractErrorCode = error_code_enum("AcceptContractErrorCode", [
    OrdersErrorCode.CONTRACT_CHANGED, CommonErrorCode.NOT_FOUND, CommonErrorCode.INVALID_ID,
    CommonErrorCode.INVALID,
], description="CONTRACT_CHANGED: the hash is not the current version's (it changed, or you hold a "
                 "stale copy): reload the contract and accept its current text; NOT_FOUND: no such contract, or "
                 "not yours; nothing was written in either case.")


@strawberry.type
class AcceptContractError:
    field: str | None
    code: AcceptContractErrorCode
    message: str


def accept_contract_errors(errors) -> list[AcceptContractError]:
    return coded_errors(AcceptContractErrorCode, AcceptContractError, errors)


@strawberry.input
class AcceptContractInput:
    contract_id: strawberry.ID
    sha256: str = strawberry.field(description="The `sha256` of the version the user read.")
    access_token: str | None = strawberry.field(
        default=None, description="A guest customer (no account): its order's signed tracking token instead of logging in."
    )


@strawberry.type
class AcceptContractPayload:
    contract: Contract | None
    errors: list[AcceptContractError]
