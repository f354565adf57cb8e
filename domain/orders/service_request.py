"""Service requests: purchase of a catalogue tier, the request state machine, tracking and admin.

The request state machine is ``MACHINE`` below (rendered in docs/state-machines.md). Guards: a move
to ``team_assigned`` needs an assigned provider; ``in_progress`` needs the order's contract accepted
by both parties when its kind has one (domain/orders/contract.py). A booking's order is moved by its
visits (domain/bookings/booking.py) as ``system``.

Every transition writes a ``service_request_status_history`` row and an outbox event in the same
transaction; customer-visible transitions also queue an email.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, false, func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.catalogue import fees, offers
from domain.identity.user import (
    InvalidEmail,
    InvalidName,
    InvalidPhone,
    normalise_email,
    normalise_name,
    normalise_phone,
)
from domain.messaging import feed, notification
from domain.money import escrow, ledger, refund
from domain.orders import contract, guest_access, kinds
from domain.orders.errors import OrdersErrorCode
from domain.orders.events import ServiceRequestStatusEvent
from domain.orders.locks import lock_request
from domain.providers import standing
from domain.shared import live, outbox, pagination, statemachine
from domain.shared.errors import CommonErrorCode, DomainError, Forbidden
from domain.shared.statemachine import rule
from gateways import registry
from gateways.base import GatewayError, GatewayUnavailable, PaymentGateway
from models import (
    Conversation,
    Payment,
    PaymentStatusChange,
    Provider,
    Service,
    ServiceRequest,
    ServiceRequestStatusChange,
    ServiceTier,
    User,
)
from models.crypto import blind_index
from models.orders.service_request import SERVICE_REQUEST_STATUSES, ServiceRequestStatus
from settings import get_settings

STATUS_LABELS = {
    "awaiting_payment": "Awaiting payment",
    "payment_confirmed": "Payment confirmed",
    "pending_contact": "We will contact you shortly",
    "team_assigned": "A provider has been assigned",
    "in_progress": "Work in progress",
    "completed": "Completed",
    "cancelled": "Cancelled",
}
NEXT_STEPS = {
    "awaiting_payment": "Complete the payment on the checkout page to confirm your request.",
    "payment_confirmed": "Your payment is confirmed; an operator is reviewing your request.",
    "pending_contact": "An operator will contact you within one business day to confirm the details.",
    "team_assigned": "Your provider will contact you to schedule the work.",
    "in_progress": "Your provider is working on your request.",
    "completed": "The work is done. Thank you for using Odim!",
    "cancelled": "This request was cancelled. Contact support if you have questions.",
}
S = ServiceRequestStatus
MACHINE = statemachine.Machine("request", ServiceRequestStatus, {
    (S.AWAITING_PAYMENT, S.PAYMENT_CONFIRMED): rule("system", why="the gateway confirms the payment"),
    (S.AWAITING_PAYMENT, S.CANCELLED): rule("admin", "system", why="never paid"),
    (S.PAYMENT_CONFIRMED, S.PENDING_CONTACT): rule("system", why="a catalogue order waits for an operator"),
    (S.PAYMENT_CONFIRMED, S.TEAM_ASSIGNED): rule("system", why="a booking's visit was accepted"),
    (S.PAYMENT_CONFIRMED, S.CANCELLED): rule("system", why="a booking's visit was declined, expired or cancelled"),
    (S.PENDING_CONTACT, S.TEAM_ASSIGNED): rule("admin", why="a provider is assigned (guard: one is)"),
    (S.PENDING_CONTACT, S.CANCELLED): rule("admin", why="cancelled and refunded in full"),
    (S.TEAM_ASSIGNED, S.IN_PROGRESS): rule("admin", "provider", "system", why="work starts (guard: contract accepted)"),
    (S.TEAM_ASSIGNED, S.CANCELLED): rule("admin", "system", why="cancelled and refunded"),
    (S.IN_PROGRESS, S.COMPLETED): rule("admin", "provider", "system", why="the work is done; escrow is released"),
    (S.IN_PROGRESS, S.CANCELLED): rule("admin", "system", why="cancelled and refunded"),
}, initial=S.AWAITING_PAYMENT)
TRANSITIONS = MACHINE.rules
InvalidTransition = statemachine.InvalidTransition
# Customer gets an email for these (payment_confirmed/pending_contact get the confirmation email).
EMAILED_STATUSES = {"team_assigned", "in_progress", "completed", "cancelled"}

REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
MAX_REQUIREMENTS = 5000


class CustomerDetailsRequired(DomainError):
    code = CommonErrorCode.REQUIRED
    field = "customer"


class IdempotencyKeyReused(DomainError):
    code = CommonErrorCode.IDEMPOTENCY_KEY_REUSED
    field = "idempotencyKey"


class RequirementsTooLong(DomainError):
    code = CommonErrorCode.TOO_LONG
    field = "customer.requirements"


class GatewayUnavailableError(DomainError):
    """The payment gateway is failing right now (its circuit is open): retry in a little while."""

    code = OrdersErrorCode.GATEWAY_UNAVAILABLE


class GatewayRefused(DomainError):
    code = OrdersErrorCode.PAYMENT_GATEWAY_ERROR


class ProviderNotAssignable(DomainError):
    code = OrdersErrorCode.PROVIDER_NOT_ASSIGNABLE
    field = "providerId"


def new_reference() -> str:
    """Human-friendly reference ``ODM-XXXX-XXXX`` (Crockford base32, 40 random bits)."""
    chars = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))
    return f"ODM-{chars[:4]}-{chars[4:]}"


# --- purchase ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerDetails:
    full_name: str | None = None
    email: str | None = None
    phone: str | None = None
    requirements: str | None = None


@dataclass(frozen=True)
class Purchase:
    service_request: ServiceRequest
    payment: Payment
    checkout_url: str
    created: bool  # False when an idempotent retry returned the earlier purchase


async def purchase_service(
    session: AsyncSession,
    gateway: PaymentGateway | None = None,
    *,
    service_id: int,
    tier_id: int | None,
    customer: CustomerDetails | None,
    user: User | None,
    affiliate_code: str | None = None,
    idempotency_key: str | None = None,
    currency: str | None = None,
) -> Purchase:
    """Create a service request for one tier of a service, its pending payment and conversation,
    and a checkout session at ``gateway``. The caller commits.

    A logged-in ``user`` may omit customer details (its account's are used); a guest must give
    full name, email and phone. Currency defaults to settings.default_currency; the gateway defaults
    to the one settings.gateway_routes names for it. The fee breakdown (domain/catalogue/fees.py) is
    snapshotted onto the order: a guest pays the guest surcharge on top of the price. The same
    ``idempotency_key`` from the same caller with the same input returns the earlier purchase;
    with different input it raises ``IdempotencyKeyReused`` (Stripe's rule).
    Raises ``offers.ServiceNotFound``, ``offers.TierNotFound``, ``offers.TierRequired``, ``offers.CurrencyNotOffered``,
    ``CustomerDetailsRequired``, ``InvalidEmail``, ``InvalidPhone``, ``InvalidName``,
    ``RequirementsTooLong``, ``offers.InvalidAffiliateCode``, ``GatewayUnavailableError`` (retryable),
    ``GatewayRefused``; on any error nothing is written (the caller rolls back)."""
    settings = get_settings()
    details = customer or CustomerDetails()
    try:
        name, email, phone, scope = _customer_fields(details, user)
    except (InvalidEmail, InvalidPhone, InvalidName) as exc:
        # The input path of these fields is ``customer.<field>`` (CustomerInput), not the account's.
        exc.field = f"customer.{exc.field}"
        raise
    requirements = (details.requirements or "").strip()
    if len(requirements) > MAX_REQUIREMENTS:
        raise RequirementsTooLong(f"Requirements are limited to {MAX_REQUIREMENTS} characters")
    currency = (currency or settings.default_currency).upper()
    affiliate_code = affiliate_code.strip().upper() if affiliate_code and affiliate_code.strip() else None
    fingerprint = hashlib.sha256(
        json.dumps([service_id, tier_id, name, email, phone, requirements, currency, affiliate_code]).encode()
    ).hexdigest()

    if idempotency_key:
        earlier = await _idempotent_replay(session, scope, idempotency_key, fingerprint)
        if earlier is not None:
            return earlier

    service, tier, price, affiliate_bps = await offers.offer(session, service_id, tier_id, currency, affiliate_code)
    if gateway is None:
        gateway = gateway_for(currency)
    quote = fees.quote(price.amount_minor, currency, service.category, guest=user is None, affiliate_bps=affiliate_bps)

    request = ServiceRequest(
        ledger_stripe=ledger.new_stripe(),
        service_id=service.id, tier_id=tier.id, customer_user_id=user.id if user else None,
        customer_name=name, customer_email=email, customer_phone=phone, requirements=requirements,
        status="awaiting_payment", affiliate_code=affiliate_code, amount_minor=quote.total,
        price_minor=quote.price, guest_surcharge_minor=quote.guest_surcharge, commission_bps=quote.commission_bps,
        guest_surcharge_bps=quote.guest_surcharge_bps, affiliate_commission_bps=quote.affiliate_commission_bps,
        currency=currency, idempotency_scope=scope if idempotency_key else None,
        idempotency_key=idempotency_key, request_fingerprint=fingerprint,
    )
    try:
        await insert_with_reference(session, request)
    except IntegrityError as exc:
        if "idempotency" not in str(exc.orig):
            raise
        replay = await _idempotent_replay(session, scope, idempotency_key or "", fingerprint)
        if replay is None:
            raise
        return replay
    payment, url = await open_order(
        session, gateway, request, actor_user_id=user.id if user else None,
        description=f"{service.name} — {tier.name} ({request.reference})",
    )
    return Purchase(request, payment, url, created=True)


async def insert_with_reference(session: AsyncSession, request: ServiceRequest) -> None:
    """Insert ``request`` under a fresh ``ODM-`` reference (a collision, 1 in 10^12, draws again).
    Other integrity errors propagate, the savepoint rolled back."""
    for _ in range(5):
        request.reference = new_reference()
        try:
            async with session.begin_nested():
                session.add(request)
                await session.flush()
            return
        except IntegrityError as exc:
            if "reference" not in str(exc.orig):
                raise
    raise RuntimeError("could not draw a free order reference")


async def open_order(
    session: AsyncSession, gateway: PaymentGateway, request: ServiceRequest, *, actor_user_id: int | None,
    description: str,
) -> tuple[Payment, str]:
    """For an order just inserted (``awaiting_payment``): its first history row, its conversation
    (catalogue orders only: a booking's conversation is the booking's own, domain/messaging/chat.py), a pending payment of ``amount_minor`` and a checkout session at ``gateway``. Returns
    ``(payment, checkout_url)``. Raises ``GatewayUnavailableError``, ``GatewayRefused`` (the caller
    rolls back: nothing is written)."""
    session.add(ServiceRequestStatusChange(
        service_request_id=request.id, from_status=None, to_status="awaiting_payment",
        actor_type="customer", actor_user_id=actor_user_id, note="Request created",
    ))
    if kinds.of(request).has_own_conversation:
        session.add(Conversation(service_request_id=request.id))
    payment = Payment(
        service_request_id=request.id, gateway=gateway.name, reference=f"pay_{secrets.token_hex(12)}",
        amount_minor=request.amount_minor, currency=request.currency, status="pending",
    )
    session.add(payment)
    await session.flush()
    session.add(PaymentStatusChange(payment_id=payment.id, from_status=None, to_status="pending", note="created"))
    # Inside the transaction on purpose: if the gateway fails, nothing is written; if the commit
    # fails after it answered, an unpaid checkout session expires at the gateway and no money moved.
    try:
        checkout = await gateway.create_checkout(
            reference=payment.reference, amount_minor=payment.amount_minor, currency=payment.currency,
            description=description, customer_email=request.customer_email, customer_phone=request.customer_phone,
        )
    except GatewayUnavailable as exc:
        raise GatewayUnavailableError(str(exc)) from exc
    except GatewayError as exc:
        if exc.retryable:
            raise GatewayUnavailableError(f"The payment gateway did not answer: {exc}") from exc
        raise GatewayRefused(f"The payment gateway refused the checkout: {exc}") from exc
    payment.checkout_url = checkout.url
    payment.gateway_id = checkout.gateway_id
    return payment, checkout.url


def _customer_fields(details: CustomerDetails, user: User | None) -> tuple[str, str, str | None, str]:
    """``(name, email, phone, idempotency scope)`` of the purchase's customer: the account's details
    unless overridden, or a guest's (all three required)."""
    if user is not None:
        name = normalise_name(details.full_name) if details.full_name else user.full_name
        email = normalise_email(details.email) if details.email else user.email
        phone = normalise_phone(details.phone) if details.phone else user.phone
        return name, email, phone, f"user:{user.id}"
    missing = [f for f, v in (("fullName", details.full_name), ("email", details.email), ("phone", details.phone)) if not v]
    if missing:
        raise CustomerDetailsRequired(f"Guests must give {', '.join(missing)}", field=f"customer.{missing[0]}")
    name = normalise_name(details.full_name or "")
    email = normalise_email(details.email or "")
    phone = normalise_phone(details.phone or "")
    # The scope names the guest by the blind index of its address, never the address itself.
    return name, email, phone, f"guest:{blind_index(email, 'email')}"


def gateway_for(currency: str) -> PaymentGateway:
    """The gateway settings.gateway_routes names for ``currency``. Raises ``offers.CurrencyNotOffered``."""
    try:
        return registry.gateway_for_currency(currency)
    except KeyError as exc:
        raise offers.CurrencyNotOffered(f"No payment gateway takes {currency}") from exc


async def _idempotent_replay(session: AsyncSession, scope: str, key: str, fingerprint: str) -> Purchase | None:
    earlier = await session.scalar(
        select(ServiceRequest).where(ServiceRequest.idempotency_scope == scope, ServiceRequest.idempotency_key == key)
    )
    if earlier is None:
        return None
    if earlier.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused("This idempotency key was used with different input")
    payment = await session.scalar(
        select(Payment).where(Payment.service_request_id == earlier.id).order_by(Payment.id.desc()).limit(1)
    )
    assert payment is not None
    return Purchase(earlier, payment, payment.checkout_url or "", created=False)


# --- state machine -----------------------------------------------------------------------------


def status_event(
    change_id: int, prev: int, reference: str, status: str, previous: str | None, note: str | None, at: datetime | None
) -> ServiceRequestStatusEvent:
    """The live event of one status change (``ServiceRequestStatusEvent``; ``at`` ISO 8601 UTC). Public:
    no personal data, since anyone with the reference may track the request."""
    return ServiceRequestStatusEvent(
        id=change_id, prev=prev, historyId=change_id, reference=reference, status=str(status),
        previousStatus=None if previous is None else str(previous), note=note or "",
        at=(at or datetime.now(UTC)).isoformat(),
    )


async def status_events_since(session: AsyncSession, reference: str, after: int, limit: int) -> list[dict]:
    """Status changes of request ``reference`` with history id > ``after``, oldest first, at most
    ``limit``, as the payloads ``transition`` published (``prev`` from a window over the whole
    history, so the first one links to the change before ``after``). 1 statement."""
    history = ServiceRequestStatusChange
    numbered = (
        select(
            history.id, history.from_status, history.to_status, history.note, history.created_at,
            func.lag(history.id, 1, 0).over(order_by=history.id).label("prev"),
        )
        .join(ServiceRequest, ServiceRequest.id == history.service_request_id)
        .where(ServiceRequest.reference == reference)
        .subquery()
    )
    rows = (
        await session.execute(select(numbered).where(numbered.c.id > after).order_by(numbered.c.id).limit(limit))
    ).all()
    return [status_event(r.id, r.prev, reference, r.to_status, r.from_status, r.note, r.created_at).payload()
            for r in rows]


async def latest_status_event_id(session: AsyncSession, reference: str) -> int:
    """The id of request ``reference``'s latest status change (0 when none)."""
    return await session.scalar(
        select(func.coalesce(func.max(ServiceRequestStatusChange.id), 0))
        .join(ServiceRequest, ServiceRequest.id == ServiceRequestStatusChange.service_request_id)
        .where(ServiceRequest.reference == reference)
    )


def allowed_transition(from_status: str, to_status: str, actor_type: str) -> bool:
    """Whether ``MACHINE`` lets ``actor_type`` move a request from ``from_status`` to ``to_status``."""
    return MACHINE.allowed(from_status, to_status, actor_type)


async def transition(
    session: AsyncSession,
    request: ServiceRequest,
    to_status: str,
    *,
    actor_type: str,
    actor_user_id: int | None = None,
    note: str = "",
    email_customer: bool = True,
) -> ServiceRequestStatusChange:
    """Move ``request`` (locked by the caller, ``SELECT ... FOR UPDATE``) to ``to_status``: writes the
    history row, the live event and (for customer-visible statuses, unless ``email_customer`` is
    False because the caller sends a more specific email) the customer email, all in the
    caller's transaction. Raises ``InvalidTransition`` when ``MACHINE`` does not allow it for
    ``actor_type`` or a guard fails (``team_assigned`` needs an assigned provider); a catalogue order's
    ``in_progress`` needs its contract accepted by both parties (``contract.ContractNotAccepted``)."""
    MACHINE.check(request.status, to_status, actor_type)
    if to_status == "team_assigned" and request.assigned_provider_id is None:
        raise InvalidTransition("Assign a provider before moving the request to team_assigned")
    kind = kinds.of(request)
    if to_status == "in_progress" and kind.has_own_contract:
        # Before work starts: the current contract accepted by both (a booking's order: its visits' own).
        await contract.require_accepted(session, service_request=request)
    previous = request.status
    change = MACHINE.move(request, to_status, actor=actor_type, session=session, history=lambda frm, to: (
        ServiceRequestStatusChange(service_request_id=request.id, from_status=frm, to_status=to,
                                   actor_type=actor_type, actor_user_id=actor_user_id, note=note)))
    request.updated_at = datetime.now(UTC)
    await session.flush()
    prev = await session.scalar(
        select(func.coalesce(func.max(ServiceRequestStatusChange.id), 0)).where(
            ServiceRequestStatusChange.service_request_id == request.id, ServiceRequestStatusChange.id < change.id
        )
    )
    outbox.publish_event(
        session, live.service_request_channel(request.reference),
        status_event(change.id, prev, request.reference, to_status, previous, note, change.created_at),
    )
    if to_status in EMAILED_STATUSES and email_customer:
        await notification.queue_email(
            session, dedupe_key=f"status:{change.id}", kind="status_changed", to=request.customer_email,
            template="status_changed",
            context={
                "name": request.customer_name, "reference": request.reference,
                "status_label": STATUS_LABELS[to_status], "next_step": NEXT_STEPS[to_status], "note": note,
                "tracking_url": guest_access.tracking_url(request.reference),
            },
        )
    if kind.notifies_status:
        await feed.service_request_status_changed(
            session, request, status_label=STATUS_LABELS[to_status], actor_user_id=actor_user_id
        )
    return change


async def update_status(
    session: AsyncSession, request_id: int, to_status: str, *, actor: User, note: str = ""
) -> ServiceRequest:
    """Admin (any allowed transition) or assigned provider (in_progress, completed) moves a request on.
    Raises ``NotFound``, ``Forbidden`` (a provider not assigned to it, a customer), ``InvalidTransition``."""
    request = await lock_request(session, request_id)
    if actor.role == "admin":
        actor_type = "admin"
    elif actor.role == "provider" and await _is_assigned_provider(session, request, actor.id):
        actor_type = "provider"
    else:
        raise Forbidden("Only an admin or the assigned provider can change this request's status")
    if len(note) > 2000:
        raise DomainError("Note is limited to 2000 characters", field="note", code=CommonErrorCode.TOO_LONG)
    if not kinds.of(request).moved_by_operators:
        raise InvalidTransition("A booking's order follows its visits: change the booking's status instead")
    await transition(session, request, to_status, actor_type=actor_type, actor_user_id=actor.id, note=note.strip())
    await money_effects(session, request, to_status, actor_type=actor_type, actor_user_id=actor.id)
    return request


async def money_effects(
    session: AsyncSession, request: ServiceRequest, to_status: str, *, actor_type: str, actor_user_id: int | None,
    refund_percent: int = 100, reason: str = "Order cancelled",
) -> None:
    """What a status change does to the order's money, in the same transaction:

    * ``completed`` by an admin releases escrow at once (unless a dispute is open: its resolution
      releases); by the provider or the system, escrow is released
      settings.escrow_release_grace_seconds later if no dispute was opened meanwhile
      (``escrow.release_due_orders``, run by the scheduler);
    * ``cancelled`` on a paid order refunds ``refund_percent`` of what is refundable (catalogue
      orders have no scheduled start: in full; bookings pass their cancellation policy's percent)."""
    now = datetime.now(UTC)
    if to_status == "completed":
        request.completed_at = now
        if actor_type == "admin" and not await escrow.has_open_dispute(session, request.id):
            await escrow.release(session, request)
        else:
            request.release_due_at = now + timedelta(seconds=get_settings().escrow_release_grace_seconds)
    elif to_status == "cancelled" and escrow.refundable(request) > 0:
        amount = escrow.refundable(request) * refund_percent // 100
        if amount > 0:
            await refund.create_refund(session, request, amount, reason=reason, requested_by_user_id=actor_user_id)


async def assign_provider(session: AsyncSession, request_id: int, provider_id: int, *, actor: User) -> ServiceRequest:
    """Admin assigns a verified, non-suspended provider. If the request is ``pending_contact`` it
    moves to ``team_assigned`` in the same transaction. Raises ``NotFound``, ``standing.ProviderSuspended``
    (a suspended provider), ``ProviderNotAssignable`` (unknown or unverified provider; request closed)."""
    request = await lock_request(session, request_id)
    if not kinds.of(request).moved_by_operators:
        raise ProviderNotAssignable(
            "A booking's provider changes through its visit (takeOverBooking), not here", field="serviceRequestId"
        )
    provider = await session.get(Provider, provider_id)
    if provider is None:
        raise ProviderNotAssignable("No such provider")
    standing.ensure_not_suspended(provider)  # PROVIDER_SUSPENDED: two strikes or an admin
    if not provider.verified or provider.suspended:
        raise ProviderNotAssignable("Only verified, non-suspended providers can be assigned")
    if request.status in ("awaiting_payment", "completed", "cancelled"):
        raise ProviderNotAssignable(f"A request in status {request.status} cannot be assigned", field="serviceRequestId")
    previous_provider_id = request.assigned_provider_id
    request.assigned_provider_id = provider.id
    await session.flush()
    changed = previous_provider_id != provider.id
    if request.status == "pending_contact":
        # The "provider assigned" email below says it, with the provider's name: not two emails.
        await transition(
            session, request, "team_assigned", actor_type="admin", actor_user_id=actor.id,
            note=f"Assigned to {provider.display_name}", email_customer=not changed,
        )
    if changed:
        await _email_assignment(session, request, provider)
    # The order's contract names its provider: a new provider makes a new version to accept.
    await contract.ensure_contract(session, service_request=request)
    return request


async def _email_assignment(session: AsyncSession, request: ServiceRequest, provider: Provider) -> None:
    """Queue "a provider was assigned to your request" to the customer and "you were assigned
    request X" to the provider's account (if it has one); once per (request, provider)."""
    service = await session.get(Service, request.service_id)
    tier = await session.get(ServiceTier, request.tier_id)
    common = {"reference": request.reference, "service": service.name if service else "",
              "tier": tier.name if tier else ""}
    await notification.queue_email(
        session, dedupe_key=f"provider_assigned:{request.id}:{provider.id}", kind="provider_assigned",
        to=request.customer_email, user_id=request.customer_user_id, template="provider_assigned",
        context={**common, "name": request.customer_name, "provider": provider.display_name,
                 "tracking_url": guest_access.tracking_url(request.reference)},
    )
    owner = await session.get(User, provider.user_id) if provider.user_id is not None else None
    if owner is not None:
        await notification.queue_email(
            session, dedupe_key=f"request_assigned:{request.id}:{provider.id}", kind="request_assigned",
            to=owner.email, user_id=owner.id, template="request_assigned",
            context={**common, "name": owner.full_name or provider.display_name, "customer": request.customer_name,
                     "requirements": request.requirements},
        )


async def _is_assigned_provider(session: AsyncSession, request: ServiceRequest, user_id: int) -> bool:
    if request.assigned_provider_id is None:
        return False
    owner = await session.scalar(select(Provider.user_id).where(Provider.id == request.assigned_provider_id))
    return owner == user_id


# --- reading -----------------------------------------------------------------------------------


async def get_by_reference(session: AsyncSession, reference: str) -> ServiceRequest | None:
    return await session.scalar(select(ServiceRequest).where(ServiceRequest.reference == reference.strip().upper()))


async def can_see_private(
    session: AsyncSession, request: ServiceRequest, viewer: User | None, guest_token: str | None = None
) -> bool:
    """Owner, assigned provider, admin, or a guest holding a valid signed link for this request."""
    if viewer is not None:
        if viewer.role == "admin" or request.customer_user_id == viewer.id:
            return True
        if viewer.role == "provider" and await _is_assigned_provider(session, request, viewer.id):
            return True
    return guest_access.verify_guest_access_token(request.reference, guest_token)


async def timelines(session: AsyncSession, request_ids: list[int]) -> dict[int, list[ServiceRequestStatusChange]]:
    """Status history per request, oldest first, for many requests in one statement."""
    rows = (
        await session.scalars(
            select(ServiceRequestStatusChange)
            .where(ServiceRequestStatusChange.service_request_id.in_(request_ids))
            .order_by(ServiceRequestStatusChange.id)
        )
    ).all()
    out: dict[int, list[ServiceRequestStatusChange]] = {i: [] for i in request_ids}
    for row in rows:
        out[row.service_request_id].append(row)
    return out


@dataclass(frozen=True)
class RequestFilter:
    service_id: int | None = None
    status: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    assigned_provider_id: int | None = None


def filter_conditions(flt: RequestFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``flt`` (service, status, created range ``[from, to)``, assigned
    provider), shared by the request table and its CSV export."""
    conditions: list[ColumnElement[bool]] = []
    if flt.service_id is not None:
        conditions.append(ServiceRequest.service_id == flt.service_id)
    if flt.status is not None:
        conditions.append(ServiceRequest.status == flt.status)
    if flt.created_from is not None:
        conditions.append(ServiceRequest.created_at >= flt.created_from)
    if flt.created_to is not None:
        conditions.append(ServiceRequest.created_at < flt.created_to)
    if flt.assigned_provider_id is not None:
        conditions.append(ServiceRequest.assigned_provider_id == flt.assigned_provider_id)
    return conditions


# Sort keys of the request table: name -> (column, parse a cursor's value). The default is newest
# first on created_at; every order ends with the id, so keyset pages never skip nor repeat a row.
REQUEST_SORTS = {
    "created_at": (ServiceRequest.created_at, pagination.timestamp),
    "updated_at": (ServiceRequest.updated_at, pagination.timestamp),
    "amount": (ServiceRequest.amount_minor, pagination.row_id),
    "status": (ServiceRequest.status, None),
}


def _sort_value(request: ServiceRequest, sort: str) -> str:
    value = getattr(request, REQUEST_SORTS[sort][0].key)
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _encode_list_cursor(request: ServiceRequest, sort: str = "created_at", descending: bool = True) -> str:
    """``<value>|<id>`` for the default order (newest first, the cursor format clients already hold), otherwise
    ``<sort>:<asc|desc>|<value>|<id>``: a cursor only continues the order it was made for."""
    tail = f"{_sort_value(request, sort)}|{request.id}"
    if (sort, descending) != ("created_at", True):
        tail = f"{sort}:{'desc' if descending else 'asc'}|{tail}"
    return base64.urlsafe_b64encode(tail.encode()).decode()


def _decode_list_cursor(cursor: str, sort: str = "created_at", descending: bool = True) -> tuple[object, int]:
    """The (sort value, id) inside ``cursor``. Raises DomainError INVALID_CURSOR for a malformed one or
    one made for another order."""
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        if (sort, descending) != ("created_at", True):
            tag, *parts = parts
            if tag != f"{sort}:{'desc' if descending else 'asc'}":
                raise ValueError(tag)
        value, rid = parts
        parse = REQUEST_SORTS[sort][1]
        if parse is None and value not in SERVICE_REQUEST_STATUSES:
            raise ValueError(value)
        return (parse(value) if parse else value), pagination.row_id(rid)  # bounded: both reach SQL
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError("Malformed cursor, or one made for another sort order", field="after",
                          code=CommonErrorCode.INVALID_CURSOR) from exc


async def list_requests(
    session: AsyncSession, viewer: User, flt: RequestFilter, *, first: int = 20, after: str | None = None,
    sort: str = "created_at", descending: bool = True,
) -> tuple[list[tuple[ServiceRequest, str]], bool, int]:
    """Requests visible to ``viewer`` (admin: all; customer: its own; provider: assigned to it),
    ordered by ``sort`` (a key of ``REQUEST_SORTS``: created_at, updated_at, amount, status; newest
    first by default) then id, keyset-paginated on ``(sort value, id)``. Returns ``([(request,
    cursor)], has_next_page, total_count)`` in two statements. Raises DomainError INVALID_SORT or
    INVALID_CURSOR."""
    if sort not in REQUEST_SORTS:
        raise DomainError(f"sort must be one of {', '.join(REQUEST_SORTS)}", field="orderBy", code=OrdersErrorCode.INVALID_SORT)
    column = REQUEST_SORTS[sort][0]
    conditions = []
    if viewer.role == "customer":
        conditions.append(ServiceRequest.customer_user_id == viewer.id)
    elif viewer.role == "provider":
        conditions.append(
            ServiceRequest.assigned_provider_id.in_(select(Provider.id).where(Provider.user_id == viewer.id))
        )
    elif viewer.role != "admin":  # fail closed: a role this code does not know sees nothing
        conditions.append(false())
    conditions += filter_conditions(flt)
    where = and_(*conditions) if conditions else None
    total_stmt = select(func.count()).select_from(ServiceRequest)
    order = (column.desc(), ServiceRequest.id.desc()) if descending else (column.asc(), ServiceRequest.id.asc())
    stmt = select(ServiceRequest).order_by(*order).limit(first + 1)
    if where is not None:
        total_stmt = total_stmt.where(where)
        stmt = stmt.where(where)
    if after:
        value, rid = _decode_list_cursor(after, sort, descending)
        key = tuple_(column, ServiceRequest.id)
        stmt = stmt.where(key < tuple_(value, rid) if descending else key > tuple_(value, rid))
    rows = (await session.scalars(stmt)).all()
    total = await session.scalar(total_stmt) or 0
    page = [(r, _encode_list_cursor(r, sort, descending)) for r in rows[:first]]
    return page, len(rows) > first, int(total)

