"""Escalations in GraphQL (admins): what an operator must look at, and the input, payload and error
codes of ``resolveEscalation``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.shared.errors import CommonErrorCode
from models import Escalation as EscalationModel
from resolvers import loaders
from resolvers.bookings import escalations as escalation_resolvers
from schema.bookings.types import Booking, Ticket
from schema.shared.common import coded_errors, error_code_enum


@strawberry.enum(description="What an operator must look at: a ticket nobody took, a visit no substitute took, a "
                 "customer not at home, an appliance model missing from the list.")
class EscalationKind(Enum):
    TICKET_UNASSIGNED = "ticket_unassigned"
    SUBSTITUTION_UNANSWERED = "substitution_unanswered"
    CUSTOMER_NO_SHOW = "customer_no_show"
    MODEL_UNLISTED = "model_unlisted"


@strawberry.type(description="Something an operator must look at (admins only).")
class Escalation(relay.Node):
    id: relay.NodeID[int]
    kind: EscalationKind
    subject: str = strawberry.field(description="`ticket:<id>` or `booking:<id>`.")
    note: str = strawberry.field(description="What happened, for the operator.")
    created_at: datetime
    resolved_at: datetime | None = strawberry.field(description="When an admin marked it handled; null while open.")
    _model: strawberry.Private[EscalationModel]

    @classmethod
    def of(cls, e: EscalationModel) -> "Escalation":
        return cls(id=e.id, kind=EscalationKind(e.kind), subject=e.subject, note=e.note, created_at=e.created_at,
                   resolved_at=e.resolved_at, _model=e)

    @strawberry.field(description="The ticket it is about (also set for a booking's escalation on a ticket).")
    async def ticket(self, info: strawberry.Info) -> Ticket | None:
        if self._model.ticket_id is None:
            return None
        found = await loaders.tickets(info.context).load(self._model.ticket_id)
        return Ticket.of(found) if found else None

    @strawberry.field(description="The visit it is about, if any.")
    async def booking(self, info: strawberry.Info) -> Booking | None:
        if self._model.booking_id is None:
            return None
        found = await loaders.bookings(info.context).load(self._model.booking_id)
        return Booking.of(found) if found else None

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await escalation_resolvers.escalation_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(e) if e else None for e in found]


@strawberry.type
class EscalationEdge:
    cursor: str
    node: Escalation


@strawberry.type
class EscalationConnection:
    edges: list[EscalationEdge]
    page_info: relay.PageInfo


EscalationErrorCode = error_code_enum("EscalationErrorCode", [
    CommonErrorCode.NOT_FOUND, CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
])


@strawberry.type
class EscalationError:
    field: str | None = strawberry.field(description="The input field it is about, or null.")
    code: EscalationErrorCode
    message: str = strawberry.field(description="For people; switch on `code`.")


def escalation_errors(errors) -> list[EscalationError]:
    return coded_errors(EscalationErrorCode, EscalationError, errors)


@strawberry.input
class ResolveEscalationInput:
    escalation_id: strawberry.ID


@strawberry.type
class ResolveEscalationPayload:
    escalation: Escalation | None
    errors: list[EscalationError]
