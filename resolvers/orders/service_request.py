"""Service request resolvers: purchase, tracking, the admin list and status changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from graphql import GraphQLError

from domain.orders import guest_access
from domain.orders import service_request as sr_domain
from domain.shared import outbox
from domain.shared.errors import CommonErrorCode, DomainError
from models import ServiceRequest
from models.db import session_scope
from resolvers import ratelimit
from resolvers.context import Context, forbidden
from resolvers.errors import PayloadError, bad_input, to_payload_error
from resolvers.ids import decode_id
from resolvers.pagination import page_size


@dataclass
class ServiceRequestView:
    """A request and whether the caller may see its personal data."""

    model: ServiceRequest
    private: bool


@dataclass
class PurchaseResult:
    request: ServiceRequestView | None
    checkout_url: str | None
    guest_access_token: str | None
    errors: list[PayloadError]


async def purchase_service(
    ctx: Context, *, service_id: str, tier_id: str | None, customer: sr_domain.CustomerDetails | None,
    affiliate_code: str | None, idempotency_key: str | None, currency: str | None,
) -> PurchaseResult:
    user = await ctx.viewer()
    try:
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 120:
            raise DomainError("Idempotency keys are 1 to 120 characters", field="idempotencyKey", code=CommonErrorCode.INVALID)
        # rate_limit_purchase per account, guests per email (no email: per IP); over it nothing is written.
        guest_key = (f"email:{customer.email}" if customer is not None and customer.email
                     else f"ip:{ratelimit.request_client_ip(ctx)}")
        wait = await ratelimit.limit(ctx, "purchase", f"user:{user.id}" if user is not None else guest_key)
        if wait is not None:
            return PurchaseResult(None, None, None, [ratelimit.rate_limited_error(wait, "purchases")])
        sid = decode_id(service_id, "Service", field="serviceId")
        tid = decode_id(tier_id, "ServiceTier", field="tierId") if tier_id else None
        async with session_scope() as session:
            purchase = await sr_domain.purchase_service(
                session, service_id=sid, tier_id=tid, customer=customer, user=user,
                affiliate_code=affiliate_code, idempotency_key=idempotency_key, currency=currency,
            )
    except DomainError as exc:
        return PurchaseResult(None, None, None, [to_payload_error(exc)])
    await outbox.relay_quietly()
    request = purchase.service_request
    token = guest_access.guest_access_token(request.reference) if user is None else None
    return PurchaseResult(ServiceRequestView(request, True), purchase.checkout_url, token, [])


async def service_request(ctx: Context, *, reference: str, access_token: str | None) -> ServiceRequestView | None:
    """Tracking by reference: anyone with the reference sees status and timeline; personal data only
    for the owner, the assigned provider, admins, or a guest with the signed ``accessToken``."""
    viewer = await ctx.viewer()
    async with ctx.db() as session:
        request = await sr_domain.get_by_reference(session, reference)
        if request is None:
            return None
        return ServiceRequestView(request, await sr_domain.can_see_private(session, request, viewer, access_token))


async def service_request_nodes(ctx: Context, ids: list[int]) -> list[ServiceRequestView | None]:
    """By global id: only callers allowed to see the private view get the object (others: null)."""
    viewer = await ctx.viewer()
    out: list[ServiceRequestView | None] = []
    async with ctx.db() as session:
        for ident in ids:
            request = await session.get(ServiceRequest, ident)
            if request is not None and viewer is not None and await sr_domain.can_see_private(session, request, viewer):
                out.append(ServiceRequestView(request, True))
            else:
                out.append(None)
    return out


@dataclass
class RequestPage:
    items: list[tuple[ServiceRequestView, str]]
    has_next_page: bool
    total_count: int


async def service_requests(
    ctx: Context, *, service_id: str | None, status: str | None, created_from: datetime | None,
    created_to: datetime | None, assigned_provider_id: str | None, first: int | None, after: str | None,
    sort: str = "created_at", descending: bool = True,
) -> RequestPage:
    """Admins see every request; customers their own; providers those assigned to them."""
    viewer = await ctx.require_user()
    try:
        flt = sr_domain.RequestFilter(
            service_id=decode_id(service_id, "Service", field="filter.serviceId") if service_id else None,
            status=status, created_from=created_from, created_to=created_to,
            assigned_provider_id=decode_id(assigned_provider_id, "Provider", field="filter.assignedProviderId")
            if assigned_provider_id else None,
        )
        size = page_size(first)
        async with ctx.db() as session:
            rows, has_next, total = await sr_domain.list_requests(
                session, viewer, flt, first=size, after=after, sort=sort, descending=descending)
    except DomainError as exc:
        raise bad_input(exc) from exc
    return RequestPage([(ServiceRequestView(r, True), c) for r, c in rows], has_next, total)


@dataclass
class RequestResult:
    request: ServiceRequestView | None
    errors: list[PayloadError]


async def update_status(ctx: Context, *, request_id: str, status: str, note: str | None) -> RequestResult:
    """Admin, or the assigned provider for in_progress/completed."""
    user = await ctx.require_user()
    if user.role not in ("admin", "provider"):
        raise forbidden("Only operators and assigned providers can change a request's status")
    try:
        rid = decode_id(request_id, "ServiceRequest", field="id")
        async with session_scope() as session:
            request = await sr_domain.update_status(session, rid, status, actor=user, note=note or "")
    except DomainError as exc:
        return RequestResult(None, [to_payload_error(exc)])
    await outbox.relay_quietly()
    return RequestResult(ServiceRequestView(request, True), [])


async def assign_provider(ctx: Context, *, request_id: str, provider_id: str) -> RequestResult:
    admin = await ctx.require_admin()
    try:
        rid = decode_id(request_id, "ServiceRequest", field="serviceRequestId")
        pid = decode_id(provider_id, "Provider", field="providerId")
        async with session_scope() as session:
            request = await sr_domain.assign_provider(session, rid, pid, actor=admin)
    except DomainError as exc:
        return RequestResult(None, [to_payload_error(exc)])
    await outbox.relay_quietly()
    return RequestResult(ServiceRequestView(request, True), [])


def require_reference(reference: str) -> str:
    cleaned = reference.strip().upper()
    if not cleaned:
        raise GraphQLError("reference is required", extensions={"code": "INVALID", "field": "reference"})
    return cleaned
