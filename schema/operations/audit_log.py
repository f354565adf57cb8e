"""The audit log in GraphQL (admins): the AuditEntry node, its connection and the ``auditLog`` filter
(root field: schema/operations/root.py; rows: models/shared/audit.py). What writes the rows at the
API edge is schema/audit.py."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from models import AuditEntry as AuditEntryModel
from resolvers.ids import encode_id
from resolvers.operations import audit_log as audit_log_resolvers


@strawberry.enum(description="How an audited action ended.")
class AuditOutcome(Enum):
    OK = "ok"
    FAILED = "failed"
    DENIED = "denied"


@strawberry.type(description="One row of the append-only audit log (admins only). Rows are never changed or "
                 "deleted: the database refuses it.")
class AuditEntry(relay.Node):
    id: relay.NodeID[int]
    occurred_at: datetime
    action: str = strawberry.field(description="Dotted name, e.g. `money.payment_captured`, `admin.refundServiceRequest`, "
                                   "`auth.login.failed`, `authz.denied`.")
    outcome: AuditOutcome
    actor_id: strawberry.ID | None = strawberry.field(description="Global id of the acting User; null for "
                                                      "anonymous callers and the system (workers, scheduler).")
    actor_role: str | None = strawberry.field(description="customer, provider or admin, as the token said.")
    ip: str | None = strawberry.field(description="The client's address as the server saw it.")
    request_id: str | None = strawberry.field(description="The request id also found in the server logs.")
    subject_type: str | None = strawberry.field(description="Type of the object acted on, e.g. LedgerTransaction.")
    subject_id: str | None = strawberry.field(description="Database id of that object (as text).")
    details: JSON = strawberry.field(description="Ids, codes and amounts; never personal data.")

    @classmethod
    def of(cls, e: AuditEntryModel) -> "AuditEntry":
        return cls(
            id=e.id, occurred_at=e.occurred_at, action=e.action, outcome=AuditOutcome(e.outcome),
            actor_id=strawberry.ID(encode_id("User", e.actor_id)) if e.actor_id is not None else None,
            actor_role=e.actor_role, ip=str(e.ip) if e.ip is not None else None, request_id=e.request_id,
            subject_type=e.subject_type, subject_id=e.subject_id, details=e.details,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await audit_log_resolvers.audit_entry_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(e) if e else None for e in found]


@strawberry.type
class AuditEntryEdge:
    cursor: str
    node: AuditEntry


@strawberry.type
class AuditEntryConnection:
    edges: list[AuditEntryEdge]
    page_info: relay.PageInfo


@strawberry.input(description="All optional, combined with AND.")
class AuditLogFilter:
    action: str | None = strawberry.field(default=None, description="Exact action, e.g. `admin.refundServiceRequest`.")
    action_prefix: str | None = strawberry.field(default=None, description="Actions starting with this, e.g. "
                                                 "`money.` or `auth.`.")
    actor_id: strawberry.ID | None = strawberry.field(default=None, description="The acting User (global or raw id).")
    subject_type: str | None = None
    subject_id: str | None = None
    outcome: AuditOutcome | None = None
    from_: datetime | None = strawberry.field(default=None, name="from", description="Inclusive, with a time zone.")
    to: datetime | None = strawberry.field(default=None, description="Exclusive, with a time zone.")
