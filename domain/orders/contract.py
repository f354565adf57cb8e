"""Contracts: before work starts, an order or a booking's visit gets a contract (scope of
work, price and fee breakdown, schedule, cancellation terms) rendered from a Jinja2 template
(``domain/orders/templates/contract.txt.j2``, the engine domain/messaging/notification.py uses for emails) and
identified by the SHA-256 of its exact UTF-8 bytes. The customer and the provider accept it (who,
when, from which IP and user agent); any change of its terms makes a new version, the previous one
superseded, that both must accept again.

When contracts are made (``ensure_contract``, in the transaction of the change, the subject
row-locked by the caller):

* a catalogue order, when a provider is assigned (domain/orders/service_request.py ``assign_provider``);
  reassigning another provider makes a new version;
* a booking's visit when it is paid and when it is accepted (domain/bookings/booking.py effects); a take-over
  by another provider makes a new version; a follow-up visit gets its own contract when booked.

Regenerating with identical terms returns the current version: no new version, no acceptance lost.
Each new version is emailed to the customer (account or guest address) and the provider's account
(email kind ``contract``, transactional, once per version and party), naming what changed and the
SHA-256 to compare with what the app shows.

Before work starts: moving an order or a visit to ``in_progress`` requires its current version
accepted by both parties (``require_accepted``: ``ContractNotAccepted``), unless
settings.contracts_required_before_work is False.

What an admin reads when settling a dispute is ``accepted_contract``: the latest version both
parties accepted. Contracts are kept when a customer's account is erased (a record the platform must
keep for the parties' legal claims, GDPR art. 17(3)(e)); they name the customer by account number and
order reference, never by name, email or phone.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import and_, case, func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messaging import notification
from domain.money import escrow
from domain.orders.errors import OrdersErrorCode
from domain.orders.guest_access import verify_guest_access_token
from domain.shared import audit
from domain.shared.errors import DomainError, Forbidden, NotFound
from domain.shared.money import Money
from models import (
    Booking,
    Contract,
    ContractAcceptance,
    Provider,
    Service,
    ServiceRequest,
    ServiceTier,
    User,
)
from settings import get_settings

PARTIES = ("customer", "provider")
TEMPLATE = "contract.txt.j2"
_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), undefined=StrictUndefined,
    keep_trailing_newline=True, autoescape=False,  # plain text: nothing is HTML
)
MAX_USER_AGENT = 400


class ContractChanged(DomainError):
    """The hash the client showed its user is not the current version's (the terms changed, or the
    client holds a stale copy): show the current version and ask again."""

    code = OrdersErrorCode.CONTRACT_CHANGED
    field = "sha256"


class ContractNotAccepted(DomainError):
    """Work cannot start: the current contract version is not accepted by both parties."""

    code = OrdersErrorCode.CONTRACT_NOT_ACCEPTED
    field = "status"


# --- terms and rendering --------------------------------------------------------------------------


def _money(currency: str):
    return lambda amount: Money(int(amount), currency).formatted()


def render_body(terms: dict[str, Any], version: int) -> str:
    """The contract's text for ``terms`` (see ``Contract.terms``) at ``version``; deterministic:
    the same terms and version always give the same bytes."""
    label = "Booking" if terms["kind"] == "booking" else "Order"
    return _env.get_template(TEMPLATE).render(
        t=terms, version=version, subject_label=label, money=_money(terms["price"]["currency"])
    )


def sha256_hex(body: str) -> str:
    """Hex SHA-256 of ``body``'s UTF-8 bytes (what the client shows and sends back)."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _price(order: ServiceRequest) -> dict[str, Any]:
    b = escrow.order_breakdown(order)
    return {
        "currency": b.currency, "price": b.price, "urgentSurcharge": b.urgent_surcharge,
        "guestSurcharge": b.guest_surcharge, "total": b.total, "commission": b.commission,
        "commissionBps": b.commission_bps, "providerShare": b.provider_share, "order": order.reference,
        "followUpOf": None,
    }


def _cancellation_lines_for_booking() -> list[str]:
    rows = sorted(get_settings().refund_policy, key=lambda row: -row[0])
    lines = []
    for i, (hours, percent) in enumerate(rows):
        if hours > 0:
            lines.append(f"Cancelled by the customer {hours} hours or more before the start: {percent} % refunded.")
        else:
            previous = rows[i - 1][0] if i else 0
            lines.append(f"Cancelled by the customer less than {previous} hours before the start: {percent} % refunded.")
    if rows and rows[-1][0] > 0:
        lines.append(f"Cancelled by the customer less than {rows[-1][0]} hours before the start: 0 % refunded.")
    lines += [
        "Declined, not answered in time, or cancelled by the provider or by Odim: 100 % refunded.",
        "If the provider cannot make it, Odim offers the visit to another provider (a new version of this "
        "contract); the customer may instead cancel with a full refund.",
        "Once the work is completed, a dispute can be opened through Odim; it is settled on this contract.",
    ]
    return lines


ORDER_CANCELLATION = [
    "Before work starts, the order can be cancelled through Odim: 100 % of what was paid is refunded.",
    "Once the work is completed, a dispute can be opened through Odim; it is settled on this contract.",
]


async def _scope(session: AsyncSession, service_id: int, tier_id: int, requirements: str) -> dict[str, Any]:
    service = await session.get(Service, service_id)
    tier = await session.get(ServiceTier, tier_id)
    return {
        "service": service.name if service else "", "category": service.category if service else "",
        "tier": tier.name if tier else "", "features": list(tier.features) if tier else [],
        "requirements": requirements, "followUpOf": None,
    }


async def _parties(session: AsyncSession, customer_user_id: int | None, provider_id: int) -> dict[str, Any]:
    provider = await session.get(Provider, provider_id)
    return {
        "customer": {"userId": customer_user_id},
        "provider": {"id": provider_id, "name": provider.display_name if provider else ""},
    }


async def terms_for_request(session: AsyncSession, request: ServiceRequest) -> dict[str, Any] | None:
    """The terms of catalogue order ``request`` now, or None while no provider is assigned.
    Shape: ``{"kind": "service_request", "reference", "parties": {"customer": {"userId"}, "provider":
    {"id", "name"}}, "scope": {"service", "category", "tier", "features", "requirements", "followUpOf": null}, "price":
    {"currency", "price", "urgentSurcharge", "guestSurcharge", "total", "commission", "commissionBps",
    "providerShare", "order", "followUpOf": null} (minor units), "schedule": {"start": null, "note"}, "cancellation":
    {"lines", "refundPercentBeforeStart": 100}}``."""
    if request.assigned_provider_id is None:
        return None
    return {
        "kind": "service_request", "reference": request.reference,
        "parties": await _parties(session, request.customer_user_id, request.assigned_provider_id),
        "scope": await _scope(session, request.service_id, request.tier_id, request.requirements),
        "price": _price(request),
        "schedule": {"start": None, "note": "The provider agrees the date and time of the work with the customer "
                     "through Odim's chat before starting."},
        "cancellation": {"lines": ORDER_CANCELLATION, "refundPercentBeforeStart": 100},
    }


async def terms_for_booking(session: AsyncSession, booking: Booking) -> dict[str, Any] | None:
    """The terms of visit ``booking`` now, or None before it has an order (unpaid hold). As
    ``terms_for_request`` with ``"kind": "booking"``, the schedule ``{"start", "end"`` (ISO 8601 UTC),
    ``"timeZone", "localStart", "localEnd"}``, the cancellation policy ``{"lines", "policy": [[hours,
    percent], ...]}`` (settings.refund_policy) and, for a follow-up visit, ``scope.followUpOf`` and
    ``price.followUpOf`` (the parent visit's reference: no additional charge)."""
    if booking.service_request_id is None:
        return None
    order = await session.get(ServiceRequest, booking.service_request_id)
    if order is None:
        return None
    zone = ZoneInfo(booking.time_zone)
    scope = await _scope(session, booking.service_id, booking.tier_id, booking.customer_note)
    price = _price(order)
    if booking.parent_booking_id is not None:
        parent = await session.scalar(select(Booking.reference).where(Booking.id == booking.parent_booking_id))
        scope["followUpOf"] = price["followUpOf"] = parent
    return {
        "kind": "booking", "reference": booking.reference,
        "parties": await _parties(session, booking.customer_user_id, booking.provider_id),
        "scope": scope, "price": price,
        "schedule": {
            "start": booking.starts_at.astimezone(UTC).isoformat(), "end": booking.ends_at.astimezone(UTC).isoformat(),
            "timeZone": booking.time_zone,
            "localStart": booking.starts_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            "localEnd": booking.ends_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        },
        "cancellation": {"lines": _cancellation_lines_for_booking(),
                         "policy": [list(row) for row in sorted(get_settings().refund_policy, key=lambda r: -r[0])]},
    }


def _canonical(terms: dict[str, Any]) -> str:
    return json.dumps(terms, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- versions -------------------------------------------------------------------------------------


def _subject(service_request_id: int | None, booking_id: int | None):
    if (service_request_id is None) == (booking_id is None):
        raise ValueError("name exactly one subject: service_request_id or booking_id")
    if service_request_id is not None:
        return Contract.service_request_id == service_request_id
    return Contract.booking_id == booking_id


async def current_contract(
    session: AsyncSession, *, service_request_id: int | None = None, booking_id: int | None = None,
    for_update: bool = False,
) -> Contract | None:
    """The subject's current (not superseded) version, or None. 1 statement."""
    stmt = select(Contract).where(_subject(service_request_id, booking_id), Contract.superseded_at.is_(None))
    if for_update:
        stmt = stmt.with_for_update(key_share=True)
    return await session.scalar(stmt)


async def ensure_contract(
    session: AsyncSession, *, service_request: ServiceRequest | None = None, booking: Booking | None = None,
    now: datetime | None = None,
) -> Contract | None:
    """Make sure the subject (an order or a visit, row-locked by the caller) has a current contract
    version for its terms now: returns the current version when its terms are identical, else
    supersedes it (``superseded_at = now``) and inserts version n+1 (version 1 for the first).
    None while the subject has no terms yet (order without provider, visit without order)."""
    now = now or datetime.now(UTC)
    if service_request is not None:
        terms = await terms_for_request(session, service_request)
        subject = {"service_request_id": service_request.id}
        provider_id = service_request.assigned_provider_id
    elif booking is not None:
        terms = await terms_for_booking(session, booking)
        subject = {"booking_id": booking.id}
        provider_id = booking.provider_id
    else:
        raise ValueError("pass service_request or booking")
    if terms is None or provider_id is None:
        return None
    current = await current_contract(session, **subject, for_update=True)
    if current is not None and _canonical(current.terms) == _canonical(terms):
        return current
    version = 1
    if current is not None:
        current.superseded_at = now
        version = current.version + 1
        await session.flush()  # the partial unique index allows one current version per subject
    body = render_body(terms, version)
    contract = Contract(**subject, version=version, provider_id=provider_id, body=body, terms=terms,
                        sha256=sha256_hex(body))
    session.add(contract)
    await session.flush()
    await audit.record(session, action="contract.generated", subject_type="Contract", subject_id=contract.id,
                       details={"contractId": contract.id, "version": version, **_subject_details(contract)})
    await _email_parties(session, contract, service_request=service_request, booking=booking,
                         previous=current.terms if current is not None else None)
    return contract


def _change(previous: dict[str, Any] | None, terms: dict[str, Any]) -> str:
    """What made a new version, in words for the email: the parts of the terms that differ."""
    if previous is None:
        return ""
    parts = {"parties": "another provider", "scope": "the scope of work", "price": "the price",
             "schedule": "the schedule", "cancellation": "the cancellation terms"}
    changed = [words for key, words in parts.items() if _canonical(previous.get(key)) != _canonical(terms.get(key))]
    return ", ".join(changed) or "the terms"


async def _email_parties(
    session: AsyncSession, contract: Contract, *, service_request: ServiceRequest | None, booking: Booking | None,
    previous: dict[str, Any] | None,
) -> None:
    """Email the customer (an account's or a guest's address) and the provider's account that
    ``contract`` waits for their acceptance (kind ``contract``, transactional; one email per version
    and party: dedupe key ``contract:<id>:<party>``). Sent after commit through the outbox."""
    recipients: list[tuple[str, str, str, int | None]] = []  # (party, address, name, account id)
    if service_request is not None:
        subject = f"order {service_request.reference}"
        recipients.append(("customer", service_request.customer_email, service_request.customer_name,
                           service_request.customer_user_id))
    else:
        subject = f"the visit {booking.reference}"
        customer = await session.get(User, booking.customer_user_id) if booking.customer_user_id else None
        if customer is not None:
            recipients.append(("customer", customer.email, customer.full_name, customer.id))
    provider = await session.get(Provider, contract.provider_id)
    owner = await session.get(User, provider.user_id) if provider is not None and provider.user_id else None
    if owner is not None:
        recipients.append(("provider", owner.email, owner.full_name, owner.id))
    price = contract.terms["price"]
    context = {"subject": subject, "version": contract.version, "change": _change(previous, contract.terms),
               "total": _money(price["currency"])(price["total"]), "sha256": contract.sha256}
    for party, address, name, user_id in recipients:
        if address:
            await notification.queue_email(
                session, dedupe_key=f"contract:{contract.id}:{party}", kind="contract", to=address,
                template="contract_ready", context={**context, "name": name or "there"}, user_id=user_id,
            )


def _subject_details(contract: Contract) -> dict[str, Any]:
    if contract.service_request_id is not None:
        return {"serviceRequestId": contract.service_request_id}
    return {"bookingId": contract.booking_id}


async def acceptances_of(session: AsyncSession, contract_ids: list[int]) -> dict[int, list[ContractAcceptance]]:
    """Acceptances per contract id, customer first. 1 statement."""
    out: dict[int, list[ContractAcceptance]] = {i: [] for i in contract_ids}
    if not contract_ids:
        return out
    rows = (await session.scalars(
        select(ContractAcceptance).where(ContractAcceptance.contract_id.in_(contract_ids))
        .order_by(ContractAcceptance.contract_id, case((ContractAcceptance.party == "customer", 0), else_=1))
    )).all()
    for row in rows:
        out[row.contract_id].append(row)
    return out


def fully_accepted(acceptances: list[ContractAcceptance]) -> bool:
    """Whether both parties accepted (given one contract's acceptances)."""
    return {a.party for a in acceptances} >= set(PARTIES)


async def require_accepted(
    session: AsyncSession, *, service_request: ServiceRequest | None = None, booking: Booking | None = None,
) -> None:
    """Work may start on the subject (row-locked by the caller): its current contract version is
    accepted by both parties. A subject made before contracts existed gets its contract now (and is
    then refused until accepted). Raises ``ContractNotAccepted`` (nothing else changes: the caller
    rolls back). A no-op when settings.contracts_required_before_work is False."""
    if not get_settings().contracts_required_before_work:
        return
    contract = await ensure_contract(session, service_request=service_request, booking=booking)
    what = "order" if service_request is not None else "visit"
    if contract is None:
        raise ContractNotAccepted(f"This {what} has no contract yet: work cannot start")
    accepted = (await acceptances_of(session, [contract.id]))[contract.id]
    if not fully_accepted(accepted):
        missing = [p for p in PARTIES if p not in {a.party for a in accepted}]
        raise ContractNotAccepted(
            f"Work cannot start before both parties accept the contract (version {contract.version}); "
            f"waiting for: {', '.join(missing)}"
        )


# --- who may read and accept ----------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What a contract is about: its order (for a visit, the visit's order) and visit, and the
    customer's account (None for a guest's order)."""

    request: ServiceRequest | None
    booking: Booking | None
    customer_user_id: int | None


async def subject_of(session: AsyncSession, contract: Contract) -> Subject:
    if contract.booking_id is not None:
        booking = await session.get(Booking, contract.booking_id)
        assert booking is not None
        return Subject(None, booking, booking.customer_user_id)
    request = await session.get(ServiceRequest, contract.service_request_id)
    assert request is not None
    return Subject(request, None, request.customer_user_id)


async def _provider_owner(session: AsyncSession, provider_id: int) -> int | None:
    return await session.scalar(select(Provider.user_id).where(Provider.id == provider_id))


async def party_of(session: AsyncSession, contract: Contract, viewer: User | None) -> str | None:
    """``customer`` (the subject's customer account), ``provider`` (the account of the provider this
    version names) or None."""
    if viewer is None:
        return None
    subject = await subject_of(session, contract)
    if subject.customer_user_id is not None and subject.customer_user_id == viewer.id:
        return "customer"
    if viewer.role == "provider" and await _provider_owner(session, contract.provider_id) == viewer.id:
        return "provider"
    return None


def _guest_may(subject: Subject, guest_token: str | None) -> bool:
    return (subject.request is not None and subject.customer_user_id is None
            and verify_guest_access_token(subject.request.reference, guest_token))


async def can_read(session: AsyncSession, contract: Contract, viewer: User | None, guest_token: str | None = None) -> bool:
    """Admins, the parties (``party_of``) and, for a guest's order, a holder of its signed link."""
    if viewer is not None and viewer.role == "admin":
        return True
    if await party_of(session, contract, viewer) is not None:
        return True
    return _guest_may(await subject_of(session, contract), guest_token)


async def get_readable(
    session: AsyncSession, contract_id: int, viewer: User | None, guest_token: str | None = None
) -> Contract:
    """Contract ``contract_id`` if ``viewer`` may read it. Raises ``NotFound`` otherwise (an unknown
    id and a contract of others look the same)."""
    contract = await session.get(Contract, contract_id)
    if contract is None or not await can_read(session, contract, viewer, guest_token):
        raise NotFound("No such contract", field="contractId")
    return contract


async def accept(
    session: AsyncSession, contract_id: int, *, user: User | None, sha256: str, guest_token: str | None = None,
    user_agent: str | None = None, now: datetime | None = None,
) -> tuple[Contract, ContractAcceptance]:
    """``user`` (the subject's customer or the provider this version names; a guest customer with its
    order's signed link ``guest_token``) accepts contract ``contract_id`` as it saw it: ``sha256`` must
    be the hash of the current version. Records who, when (``now``), the IP from the bound request
    (``domain.audit.current()``) and ``user_agent`` (cut to 400 characters), and audits
    ``contract.accepted``. Accepting twice returns the first acceptance (nothing new written).
    An admin accepts as the provider only for a provider without an Odim account (operator-managed:
    the acceptance names the admin). Raises ``NotFound`` (unknown, or not a party: others cannot tell
    it exists), ``Forbidden`` (an admin otherwise: admins read contracts, the parties accept them),
    ``ContractChanged`` (superseded version or another hash). On error nothing is written."""
    now = now or datetime.now(UTC)
    contract = await session.scalar(
        select(Contract).where(Contract.id == contract_id).with_for_update(key_share=True).execution_options(populate_existing=True)
    )
    if contract is None:
        raise NotFound("No such contract", field="contractId")
    party = await party_of(session, contract, user)
    acting_user = user if party is not None else None  # None: a guest through its signed link
    if party is None:
        if _guest_may(await subject_of(session, contract), guest_token):
            party = "customer"
        elif user is not None and user.role == "admin" and await _provider_owner(session, contract.provider_id) is None:
            # A provider without an Odim account (operator-managed) accepts through an operator, who
            # records it on its behalf: the acceptance names the admin's account.
            party, acting_user = "provider", user
        elif user is not None and user.role == "admin":
            raise Forbidden("Admins read contracts; only the customer and the provider accept them (an admin "
                            "accepts for a provider only when it has no account)", field="contractId")
        else:
            raise NotFound("No such contract", field="contractId")
    if contract.superseded_at is not None:
        raise ContractChanged(f"This contract was replaced by a newer version (version {contract.version} is "
                              "superseded): read and accept the current one")
    if (sha256 or "").strip().lower() != contract.sha256:
        raise ContractChanged("The contract you read is not the current text: reload it and accept again")
    existing = await session.scalar(
        select(ContractAcceptance).where(ContractAcceptance.contract_id == contract.id, ContractAcceptance.party == party)
    )
    if existing is not None:
        return contract, existing
    acceptance = ContractAcceptance(
        contract_id=contract.id, party=party, user_id=acting_user.id if acting_user is not None else None,
        accepted_at=now, ip=audit.current().ip, user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
    )
    session.add(acceptance)
    await session.flush()
    await audit.record(
        session, action="contract.accepted", subject_type="Contract", subject_id=contract.id,
        actor_id=acting_user.id if acting_user is not None else None,
        actor_role=acting_user.role if acting_user is not None else "guest",
        details={"contractId": contract.id, "version": contract.version, "party": party,
                 "sha256": contract.sha256, **_subject_details(contract)},
    )
    return contract, acceptance


# --- what a dispute is settled on -----------------------------------------------------------------


def _accepted_by_both():
    accepted = (
        select(func.count(func.distinct(ContractAcceptance.party)))
        .where(ContractAcceptance.contract_id == Contract.id).scalar_subquery()
    )
    return accepted == len(PARTIES)


async def accepted_contract(
    session: AsyncSession, *, service_request_id: int | None = None, booking_id: int | None = None
) -> Contract | None:
    """The latest contract version accepted by both parties: of visit ``booking_id``, or of order
    ``service_request_id`` (for a booking's order: of its visits, the disputed or resolved visit
    first, then the newest). None when no version was accepted by both. 1 statement."""
    if booking_id is not None and service_request_id is None:
        return await session.scalar(
            select(Contract).where(Contract.booking_id == booking_id, _accepted_by_both())
            .order_by(Contract.version.desc()).limit(1)
        )
    if service_request_id is None or booking_id is not None:
        raise ValueError("name exactly one subject: service_request_id or booking_id")
    return (await accepted_contracts_for_orders(session, [service_request_id])).get(service_request_id)


async def accepted_contracts_for_orders(session: AsyncSession, order_ids: list[int]) -> dict[int, Contract]:
    """``accepted_contract(service_request_id=i)`` for many orders at once: ``{order id: contract}``
    (orders without one are absent). 1 statement (DISTINCT ON the order)."""
    if not order_ids:
        return {}
    order_id = func.coalesce(Contract.service_request_id, Booking.service_request_id).label("order_id")
    disputed = case((Booking.status.in_(("disputed", "resolved")), 0), else_=1)
    rows = (await session.execute(
        select(order_id, Contract).ext(distinct_on(order_id)).outerjoin(Booking, Booking.id == Contract.booking_id)
        .where(
            Contract.service_request_id.in_(order_ids)
            | and_(Contract.booking_id.is_not(None), Booking.service_request_id.in_(order_ids)),
            _accepted_by_both(),
        )
        .order_by(order_id, disputed, Contract.id.desc())
    )).all()
    return {row.order_id: row.Contract for row in rows}


async def current_contracts(
    session: AsyncSession, *, service_request_ids: list[int] | None = None, booking_ids: list[int] | None = None,
) -> dict[int, Contract]:
    """Current versions of many orders (``{service_request_id: contract}``) or visits
    (``{booking_id: contract}``). 1 statement."""
    if service_request_ids is not None:
        rows = (await session.scalars(select(Contract).where(
            Contract.service_request_id.in_(service_request_ids), Contract.superseded_at.is_(None)))).all()
        return {c.service_request_id: c for c in rows}
    rows = (await session.scalars(select(Contract).where(
        Contract.booking_id.in_(booking_ids or []), Contract.superseded_at.is_(None)))).all()
    return {c.booking_id: c for c in rows}


# --- PDF ------------------------------------------------------------------------------------------


def render_pdf(contract: Contract, acceptances: list[ContractAcceptance]) -> bytes:
    """The contract as a PDF (fpdf2, A4, uncompressed): its body as stored, then its SHA-256 and each
    acceptance (party, account, UTC time, IP). The hash is also the document's subject (PDF metadata).
    Text in settings.contract_pdf_font_path when that font file exists, else Courier (Latin-1 only:
    other characters print as "?"). CPU-bound (a few ms): call it off the event loop."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_compression(False)
    pdf.set_title(f"Odim contract {contract.id} version {contract.version}")
    pdf.set_subject(f"sha256:{contract.sha256}")
    pdf.set_creator("Odim")
    pdf.set_creation_date(contract.created_at)
    font_path = get_settings().contract_pdf_font_path
    if font_path and os.path.isfile(font_path):
        pdf.add_font("ContractFont", fname=font_path)
        family, unicode_font = "ContractFont", True
    else:
        family, unicode_font = "Courier", False

    def text(value: str) -> str:
        return value if unicode_font else value.encode("latin-1", "replace").decode("latin-1")

    pdf.add_page()
    pdf.set_font(family, size=9)
    pdf.multi_cell(0, 4.5, text(contract.body), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    lines = ["SHA-256 of the text above (its UTF-8 bytes):", contract.sha256, ""]
    if contract.superseded_at is not None:
        lines.append(f"Superseded by a newer version on {contract.superseded_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC.")
    if acceptances:
        for a in acceptances:
            who = f"account no. {a.user_id}" if a.user_id is not None else "guest (signed order link)"
            lines.append(f"Accepted by the {a.party} ({who}) on {a.accepted_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC "
                         f"from IP {a.ip or 'unknown'}.")
    else:
        lines.append("Not accepted yet.")
    pdf.multi_cell(0, 4.5, text("\n".join(lines)), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
