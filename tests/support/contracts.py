"""Contract helpers for tests: both parties accept the current contract of an order or a visit,
through the domain as the acceptContract mutation does (so work may start)."""

from __future__ import annotations

from sqlalchemy import select

from domain.orders import contract, guest_access, locks
from models import Booking, Provider, ServiceRequest, User
from models.db import session_scope
from tests.support.factories import make_user


async def accept_both(*, service_request_id: int | None = None, booking_id: int | None = None) -> int:
    """Make sure the subject has its current contract (``contract.ensure_contract``) and have its
    customer (a guest: through its signed link) and its provider's account (a provider without one:
    an admin on its behalf) accept it. Returns the contract id. Raises when the subject has no contract terms yet (no provider, no order)."""
    async with session_scope() as s:
        if booking_id is not None:
            subject = await s.scalar(select(Booking).where(Booking.id == booking_id).with_for_update())
            made = await contract.ensure_contract(s, booking=subject)
            reference = None
        else:
            subject = await locks.lock_request(s, service_request_id)
            made = await contract.ensure_contract(s, service_request=subject)
            reference = subject.reference
        assert made is not None, "no contract terms yet (no provider or no order)"
        contract_id, sha = made.id, made.sha256
        provider_owner = await s.scalar(select(Provider.user_id).where(Provider.id == made.provider_id))
        customer_id = subject.customer_user_id
    for party, party_user_id in (("customer", customer_id), ("provider", provider_owner)):
        async with session_scope() as s:
            user = await s.get(User, party_user_id) if party_user_id is not None else None
            if party == "provider" and user is None:  # a provider without an account: an admin accepts for it
                user = await s.scalar(select(User).where(User.role == "admin").order_by(User.id).limit(1))
                if user is None:
                    user = await make_user("contracts-admin@example.com", role="admin")
            token = guest_access.guest_access_token(reference) if user is None and reference else None
            await contract.accept(s, contract_id, user=user, sha256=sha, guest_token=token)
    return contract_id


async def accept_order(request: ServiceRequest | int) -> int:
    """``accept_both`` for an order (a model or its id)."""
    return await accept_both(service_request_id=request if isinstance(request, int) else request.id)


async def accept_visit_if_contracted(booking_id: int) -> None:
    """``accept_both`` for a visit that has contract terms (paid, or a follow-up); a no-op for a visit
    without an order (a hold): its move is refused for other reasons."""
    async with session_scope() as s:
        order_id = await s.scalar(select(Booking.service_request_id).where(Booking.id == booking_id))
    if order_id is not None:
        await accept_both(booking_id=booking_id)
