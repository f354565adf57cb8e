"""Guest access to orders: signed, expiring links that let a customer without an account track
and act on its own order, the "magic link" email of all of a guest's orders, and claiming guest
orders into a verified account.

A token is ``<exp>.<hmac>``: HMAC-SHA256 of ``"<reference>.<exp>"`` under
settings.guest_link_secret, valid until ``exp`` (settings.guest_link_ttl_seconds after issue) and
compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.identity.user import normalise_email
from domain.messaging import notification
from domain.orders.errors import OrdersErrorCode
from domain.shared import audit
from domain.shared.errors import DomainError
from models import Service, ServiceRequest, User
from models.crypto import blind_index
from settings import get_settings


def guest_access_token(reference: str, *, now: float | None = None) -> str:
    """Signed, expiring token giving a guest access to its own request: ``<exp>.<hmac>``,
    HMAC-SHA256 of ``"<reference>.<exp>"`` under settings.guest_link_secret."""
    settings = get_settings()
    exp = int((time.time() if now is None else now) + settings.guest_link_ttl_seconds)
    return f"{exp}.{_guest_sig(reference, exp)}"


def _guest_sig(reference: str, exp: int) -> str:
    key = get_settings().guest_link_secret.get_secret_value().encode()
    mac = hmac.new(key, f"{reference}.{exp}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def verify_guest_access_token(reference: str, token: str | None) -> bool:
    """True when ``token`` was issued for ``reference`` and has not expired (constant-time check)."""
    if not token or "." not in token:
        return False
    exp_s, sig = token.split(".", 1)
    try:
        exp = int(exp_s)
    except ValueError:
        return False
    return exp >= time.time() and hmac.compare_digest(sig, _guest_sig(reference, exp))


class EmailNotVerified(DomainError):
    code = OrdersErrorCode.EMAIL_NOT_VERIFIED
    field = None


def guest_requests_of(email: str):
    """SQL clause: requests bought as a guest (no account) with ``email`` as the customer's address."""
    return and_(ServiceRequest.customer_user_id.is_(None),
                ServiceRequest.customer_email_bidx == blind_index(email, "email"))  # encrypted: its blind index


async def send_guest_access_links(session: AsyncSession, email: str) -> int:
    """Email the signed, expiring tracking links (settings.guest_link_ttl_seconds) of the newest 50 guest
    requests bought with ``email``: the guest's "magic link" to its purchases. Returns how many (the
    API never tells the caller: the answer would reveal who bought what). Raises ``InvalidEmail``."""
    address = normalise_email(email)
    rows = (await session.execute(
        select(ServiceRequest.reference, Service.name).join(Service, Service.id == ServiceRequest.service_id)
        .where(guest_requests_of(address)).order_by(ServiceRequest.id.desc()).limit(50)
    )).all()
    if not rows:
        return 0
    items = [{"reference": ref, "service": name, "url": tracking_url(ref)} for ref, name in rows]
    await notification.queue_email(
        session, dedupe_key=f"guest_links:{secrets.token_hex(16)}", kind="account", to=address,
        template="guest_links", context={"items": items},
    )
    return len(items)


async def claim_guest_purchases(session: AsyncSession, user: User, *, references: list[str] | None = None) -> list[str]:
    """Attach every guest request bought with the account's email to the account (they then show in
    myServiceRequests and follow the account's rights). Only for a VERIFIED email, or anyone could
    register a victim's address and take its orders. ``references`` (at most 100) narrows the claim;
    references that are not such purchases are skipped. Returns the references claimed. Raises
    ``EmailNotVerified``."""
    if user.email_verified_at is None:
        raise EmailNotVerified("Confirm your email address first (we sent you a link); then claim your purchases")
    claim = update(ServiceRequest).where(guest_requests_of(user.email))
    if references is not None:
        claim = claim.where(ServiceRequest.reference.in_([r.strip().upper() for r in references[:100]]))
    refs = (await session.scalars(
        claim.values(customer_user_id=user.id).returning(ServiceRequest.reference)
    )).all()
    if refs:
        await audit.record(session, action="account.guest_purchases.claimed", actor_id=user.id, actor_role=user.role,
                           subject_type="User", subject_id=user.id, details={"references": sorted(refs)})
    return sorted(refs)


def tracking_url(reference: str) -> str:
    """Signed tracking link for the customer's emails (works for guests)."""
    base = get_settings().public_base_url.rstrip("/")
    return f"{base}/track/{reference}?token={guest_access_token(reference)}"
