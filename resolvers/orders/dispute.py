"""Dispute resolvers: open (the order's customer or an admin), resolve (admin), list (admin)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.orders import dispute as dispute_domain
from domain.orders import service_request as sr_domain
from domain.shared import outbox
from domain.shared.errors import DomainError, NotFound
from models import Dispute, ServiceRequest
from models.db import session_scope
from resolvers.context import Context
from resolvers.errors import PayloadError, bad_input, to_payload_error
from resolvers.ids import decode_id
from resolvers.orders.service_request import ServiceRequestView
from resolvers.pagination import page_size


@dataclass
class DisputeResult:
    dispute: Dispute | None
    request: ServiceRequestView | None
    errors: list[PayloadError]


async def open_dispute(ctx: Context, *, service_request_id: str, reason: str) -> DisputeResult:
    """The order's customer (logged in) or an admin opens a dispute (``dispute.open_dispute``).
    Anyone else gets a top-level FORBIDDEN and nothing is written."""
    user = await ctx.require_user()
    try:
        rid = decode_id(service_request_id, "ServiceRequest", field="serviceRequestId")
        async with session_scope() as session:
            opened = await dispute_domain.open_dispute(session, rid, actor=user, reason=reason)
            request = await session.get(ServiceRequest, rid)
    except NotFound as exc:
        exc.field = "serviceRequestId"
        return DisputeResult(None, None, [to_payload_error(exc)])
    except DomainError as exc:
        return DisputeResult(None, None, [to_payload_error(exc)])
    await outbox.relay_quietly()
    assert request is not None
    return DisputeResult(opened, ServiceRequestView(request, True), [])


async def resolve_dispute(
    ctx: Context, *, dispute_id: str, resolution: str, refund_amount: int | None, note: str | None
) -> DisputeResult:
    """Admin settles an open dispute: ``release``, ``refund_full`` or ``refund_partial`` (with
    ``refund_amount`` in minor units, below what is refundable). Refunds go to the gateway after
    commit (the ``send_refund`` job)."""
    admin = await ctx.require_admin()
    try:
        did = decode_id(dispute_id, "Dispute", field="disputeId")
        async with session_scope() as session:
            resolved = await dispute_domain.resolve_dispute(
                session, did, actor=admin, resolution=resolution, refund_minor=refund_amount, note=note or "",
            )
            request = await session.get(ServiceRequest, resolved.service_request_id)
    except DomainError as exc:
        return DisputeResult(None, None, [to_payload_error(exc)])
    await outbox.relay_quietly()
    assert request is not None
    return DisputeResult(resolved, ServiceRequestView(request, True), [])


async def disputes(
    ctx: Context, *, status: str | None, first: int | None, after: str | None
) -> tuple[list[tuple[Dispute, str]], bool]:
    """Admin: disputes newest first (optionally of one ``status``), keyset-paginated on id in one
    statement. Returns ``([(dispute, cursor)], has_next_page)``."""
    await ctx.require_admin()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            return await dispute_domain.list_disputes(session, status=status, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc


async def dispute_nodes(ctx: Context, ids: list[int]) -> list[Dispute | None]:
    """Disputes by global id: only for callers who may see their order's private view."""
    viewer = await ctx.viewer()
    if viewer is None:
        return [None] * len(ids)
    out: list[Dispute | None] = []
    async with ctx.db() as session:
        for ident in ids:
            found = await session.get(Dispute, ident)
            request = await session.get(ServiceRequest, found.service_request_id) if found else None
            visible = request is not None and await sr_domain.can_see_private(session, request, viewer)
            out.append(found if visible else None)
    return out
