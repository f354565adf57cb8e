"""Provider payouts: where a provider is paid, what it has earned, and the payouts that send it.

Destinations. A provider registers one or more payout destinations per currency: a mobile-money
wallet (E.164 phone of the destination's country plus its operator) or a bank account (bank code
plus account number). One destination per (provider, currency) is the default (partial unique index
``uq_payout_destinations_default``); payouts go to it.

Earnings. ``escrow.release`` writes one ``provider_earnings`` row per completed order
(``available``); a refund after release lowers its ``amount_minor``. While a dispute is open on the
order its earning is *held*: no payout picks it up. Earnings move
``available -> in_payout -> paid``, or back to ``available`` (``payout_id`` cleared) when their
payout fails, so the next run pays them again with a new payout and a new reference.

The payout state machine is ``MACHINE`` below (docs/state-machines.md); a ``payout_status_history``
row is written for every change.

A "paid" for a pending payout goes through ``sent`` (two history rows). Repeated or out-of-order
news never moves a final payout; a "paid" after "failed" is a conflict for an operator (the money
went back to the provider's payable balance and may be paid twice): it is logged, the operator is
alerted and ``apply_payout_status`` returns ``"conflict"``.

Ledger flow, per currency (domain/money/ledger.py; one balanced transaction per step, idempotent on the
payout's reference, in the same database transaction as the status change)::

    payout created   payout_sent    provider_payable(p)  -> payout_in_transit(p)
    gateway: paid    payout_paid    payout_in_transit(p) -> gateway_clearing(gw)
    gateway: failed  payout_failed  payout_in_transit(p) -> provider_payable(p)

Sending. ``create_payout_for_provider`` writes the payout, its earnings, its ledger transaction and
a ``send_payout`` job (transactional outbox) in the caller's transaction. ``send_payout`` then calls
the gateway outside any database transaction: the payout's reference (``po_...``) is the idempotency
key at the gateway, and any retry first asks the gateway for the payout by that reference before
creating it again, so a payout is never sent twice. ``run_payouts`` is the scheduled batch.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import phonenumbers
import structlog
from sqlalchemy import Select, and_, case, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Exists

from domain.identity.user import InvalidPhone, normalise_phone
from domain.messaging import feed, notification
from domain.money import ledger
from domain.money.errors import MoneyErrorCode
from domain.shared import idempotency, outbox, pagination, statemachine
from domain.shared.errors import CommonErrorCode, DomainError, Forbidden, NotFound
from domain.shared.money import Money
from domain.shared.pagination import InvalidCursor  # noqa: F401  (raised by the list functions below)
from domain.shared.statemachine import rule
from gateways import registry
from gateways.base import GatewayError, PaymentGateway, PayoutResult
from gateways.base import PayoutDestination as GatewayDestination
from models import Dispute, Payout, PayoutDestination, PayoutStatusChange, Provider, ProviderEarning, User
from models.db import session_scope
from models.money.payout import PayoutStatus
from settings import get_settings

log = structlog.get_logger(__name__)

# pending -> sent -> paid | failed; pending -> failed. paid and failed are final.
PS = PayoutStatus
MACHINE = statemachine.Machine("payout", PayoutStatus, {
    (PS.PENDING, PS.SENT): rule("system", why="the gateway accepted it, not settled yet"),
    (PS.SENT, PS.PAID): rule("system", why="the gateway paid it (final)"),
    (PS.SENT, PS.FAILED): rule("system", why="the gateway failed it: its earnings are available again (final)"),
    (PS.PENDING, PS.FAILED): rule("system", why="refused before it was sent (final)"),
}, initial=PS.PENDING)
FINAL_STATUSES = frozenset({"paid", "failed"})

# Mobile-money operators we can pay out to, per country (ISO 3166-1 alpha-2). Sources: Notch Pay
# (Cameroon: MTN Mobile Money, Orange Money), Flutterwave's "Mobile money transfers" supported
# networks (CI, SN, GH, KE, UG, RW), Paystack's ``mobile_money`` transfer recipients (Ghana, Kenya).
# Nigeria and India have no mobile-money payouts at our gateways: bank accounts only.
MOBILE_MONEY_OPERATORS: dict[str, tuple[str, ...]] = {
    "CM": ("mtn", "orange"),
    "CI": ("moov", "mtn", "orange", "wave"),
    "SN": ("orange", "wave"),
    "GH": ("airteltigo", "mtn", "telecel"),
    "KE": ("airtel", "mpesa"),
    "UG": ("airtel", "mtn"),
    "RW": ("airtel", "mtn"),
}
# The currency a destination in these countries is paid in (a CM wallet receives XAF, not NGN).
COUNTRY_CURRENCY: dict[str, str] = {
    "CM": "XAF", "CI": "XOF", "SN": "XOF", "GH": "GHS", "KE": "KES", "UG": "UGX", "RW": "RWF", "NG": "NGN",
    "IN": "INR", "US": "USD",
}


@dataclass(frozen=True)
class BankRule:
    """What a bank account looks like in one country: account number length in digits, bank code pattern."""

    account_digits: tuple[int, int]
    bank_code: re.Pattern[str]
    bank_code_hint: str


# Nigeria: 10-digit NUBAN (CBN standard) and Paystack's numeric bank codes ("058", "50515", ...).
# India: 9-18 digit account numbers and an IFSC bank code (4 letters, 0, 6 letters or digits; RBI).
BANK_RULES: dict[str, BankRule] = {
    "NG": BankRule((10, 10), re.compile(r"\d{3,6}"), "a 3 to 6 digit bank code, e.g. 058"),
    "IN": BankRule((9, 18), re.compile(r"[A-Z]{4}0[A-Z0-9]{6}"), "an IFSC, e.g. HDFC0001234"),
}
DEFAULT_BANK_RULE = BankRule((6, 30), re.compile(r"[A-Z0-9]{2,20}"), "2 to 20 letters or digits")
MAX_HOLDER_NAME = 200
# The scheduled run stops paying to a destination after this many failed payouts in a row (none
# paid since): a wrong number would otherwise fail, and email the provider, on every run. A new
# destination (or an instant payout the provider asks for) starts again.
MAX_FAILURES_PER_DESTINATION = 3


# --- errors ---------------------------------------------------------------------------------------


class InvalidDestinationKind(DomainError):
    code = CommonErrorCode.INVALID_KIND
    field = "kind"


class UnsupportedCurrency(DomainError):
    code = MoneyErrorCode.UNSUPPORTED_CURRENCY
    field = "currency"


class InvalidCountry(DomainError):
    code = MoneyErrorCode.INVALID_COUNTRY
    field = "countryCode"


class CurrencyMismatch(DomainError):
    code = MoneyErrorCode.CURRENCY_MISMATCH
    field = "currency"


class HolderNameRequired(DomainError):
    code = CommonErrorCode.REQUIRED
    field = "holderName"


class HolderNameTooLong(DomainError):
    code = CommonErrorCode.TOO_LONG
    field = "holderName"


class PhoneRequired(DomainError):
    code = CommonErrorCode.REQUIRED
    field = "phone"


class MobileMoneyUnavailable(DomainError):
    code = MoneyErrorCode.MOBILE_MONEY_UNAVAILABLE
    field = "countryCode"


class UnknownOperator(DomainError):
    code = MoneyErrorCode.UNKNOWN_OPERATOR
    field = "operator"


class InvalidBankCode(DomainError):
    code = MoneyErrorCode.INVALID_BANK_CODE
    field = "bankCode"


class InvalidAccountNumber(DomainError):
    code = MoneyErrorCode.INVALID_ACCOUNT_NUMBER
    field = "accountNumber"


class InvalidPayoutDestination(DomainError):
    """Every problem found with a destination's input at once: ``errors`` lists them (each one a
    typed DomainError above, or ``domain.user.InvalidPhone``, with its camelCase ``field``), in
    input order. ``code``/``field``/``message`` are the first one's. Resolvers return the whole list."""

    def __init__(self, errors: list[DomainError]):
        first = errors[0]
        super().__init__(first.message, field=first.field, code=first.code)
        self.errors = list(errors)


class NoPayoutDestination(DomainError):
    code = MoneyErrorCode.NO_PAYOUT_DESTINATION
    field = "currency"


class BelowPayoutMinimum(DomainError):
    code = MoneyErrorCode.BELOW_PAYOUT_MINIMUM
    field = "currency"


class NoPayoutGateway(DomainError):
    code = MoneyErrorCode.UNSUPPORTED_CURRENCY
    field = "currency"


class DestinationFailing(DomainError):
    code = MoneyErrorCode.DESTINATION_FAILING
    field = "currency"


# --- destinations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CleanDestination:
    kind: str
    currency: str
    country_code: str
    holder_name: str
    phone: str | None
    operator: str | None
    bank_code: str | None
    account_number: str | None


def _validate_destination(
    *, kind: str, currency: str, country_code: str, holder_name: str, phone: str | None, operator: str | None,
    bank_code: str | None, account_number: str | None,
) -> _CleanDestination:
    errors: list[DomainError] = []
    kind = (kind or "").strip().lower()
    if kind not in ("mobile_money", "bank_account"):
        errors.append(InvalidDestinationKind("kind must be MOBILE_MONEY or BANK_ACCOUNT"))
    currency = (currency or "").strip().upper()
    currency_ok = currency in get_settings().gateway_routes
    if not currency_ok:
        routed = ", ".join(sorted(get_settings().gateway_routes))
        errors.append(UnsupportedCurrency(f"Payouts are made in {routed}"))
    country = (country_code or "").strip().upper()
    country_ok = len(country) == 2 and country in phonenumbers.SUPPORTED_REGIONS
    if not country_ok:
        errors.append(InvalidCountry("countryCode must be an ISO 3166 country code such as CM"))
    elif currency_ok and COUNTRY_CURRENCY.get(country, currency) != currency:
        errors.append(CurrencyMismatch(f"Destinations in {country} are paid in {COUNTRY_CURRENCY[country]}"))
    name = " ".join((holder_name or "").split())
    if not name:
        errors.append(HolderNameRequired("Give the name the account is registered to"))
    elif len(name) > MAX_HOLDER_NAME:
        errors.append(HolderNameTooLong(f"The holder name is limited to {MAX_HOLDER_NAME} characters"))
    clean_phone = clean_operator = clean_bank = clean_account = None
    if kind == "mobile_money":
        if not phone or not phone.strip():
            errors.append(PhoneRequired("A mobile-money destination needs its phone number"))
        elif country_ok:
            try:
                clean_phone = normalise_phone(phone, country)
                parsed = phonenumbers.parse(clean_phone)
                if phonenumbers.region_code_for_number(parsed) != country:
                    raise InvalidPhone(f"This is not a number of {country}")
                if phonenumbers.number_type(parsed) not in (
                    phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE
                ):
                    raise InvalidPhone("This is not a mobile number")
            except InvalidPhone as exc:
                clean_phone = None
                errors.append(exc)
        operators = MOBILE_MONEY_OPERATORS.get(country, ()) if country_ok else ()
        if country_ok and not operators:
            errors.append(MobileMoneyUnavailable(f"Mobile-money payouts are not offered in {country}; use a bank account"))
        elif operators:
            clean_operator = (operator or "").strip().lower()
            if clean_operator not in operators:
                errors.append(UnknownOperator(f"operator must be one of {', '.join(operators)} in {country}"))
    elif kind == "bank_account":
        rule = BANK_RULES.get(country, DEFAULT_BANK_RULE)
        clean_bank = (bank_code or "").replace(" ", "").upper()
        if not rule.bank_code.fullmatch(clean_bank):
            errors.append(InvalidBankCode(f"bankCode must be {rule.bank_code_hint}"))
        clean_account = re.sub(r"[\s-]", "", account_number or "")
        low, high = rule.account_digits
        if not re.fullmatch(rf"[0-9]{{{low},{high}}}", clean_account):
            size = f"{low}" if low == high else f"{low} to {high}"
            errors.append(InvalidAccountNumber(f"accountNumber must be {size} digits"))
    if errors:
        raise InvalidPayoutDestination(errors)
    return _CleanDestination(kind, currency, country, name, clean_phone, clean_operator, clean_bank, clean_account)


async def register_destination(
    session: AsyncSession,
    provider_id: int,
    *,
    kind: str,
    currency: str,
    country_code: str,
    holder_name: str,
    phone: str | None = None,
    operator: str | None = None,
    bank_code: str | None = None,
    account_number: str | None = None,
    make_default: bool = True,
) -> PayoutDestination:
    """Add a payout destination for provider ``provider_id``, in the caller's transaction.

    ``kind`` ``mobile_money`` needs ``phone`` (normalised to E.164 with ``country_code`` as the
    default region; it must be a mobile number of that country) and ``operator`` from
    ``MOBILE_MONEY_OPERATORS[country_code]``; ``bank_account`` needs ``bank_code`` and
    ``account_number`` (digits; ``BANK_RULES`` per country: NUBAN in Nigeria, IFSC in India).
    ``currency`` must be one settings.gateway_routes routes, and the country's currency where
    ``COUNTRY_CURRENCY`` knows it. Fields of the other kind are ignored.

    With ``make_default`` (or when the provider has no default for this currency yet) it becomes the
    default for its currency and the previous default stops being one. Raises ``NotFound``
    (``providerId``) and ``InvalidPayoutDestination`` listing every input problem; nothing is
    written on error."""
    clean = _validate_destination(
        kind=kind, currency=currency, country_code=country_code, holder_name=holder_name, phone=phone,
        operator=operator, bank_code=bank_code, account_number=account_number,
    )
    # One registration at a time per provider: the default swap below never races another.
    provider = await session.scalar(select(Provider).where(Provider.id == provider_id).with_for_update(key_share=True))
    if provider is None:
        raise NotFound("No such provider", field="providerId")
    current_default = await session.scalar(
        select(PayoutDestination.id).where(
            PayoutDestination.provider_id == provider_id, PayoutDestination.currency == clean.currency,
            PayoutDestination.is_default.is_(True), PayoutDestination.disabled.is_(False),
        )
    )
    is_default = make_default or current_default is None
    if is_default and current_default is not None:
        await session.execute(
            update(PayoutDestination).where(PayoutDestination.id == current_default).values(is_default=False)
        )
    destination = PayoutDestination(
        provider_id=provider_id, kind=clean.kind, currency=clean.currency, country_code=clean.country_code,
        holder_name=clean.holder_name, phone=clean.phone, operator=clean.operator, bank_code=clean.bank_code,
        account_number=clean.account_number, is_default=is_default, disabled=False,
    )
    session.add(destination)
    await session.flush()
    return destination


async def list_destinations(
    session: AsyncSession, provider_id: int, *, include_disabled: bool = False
) -> list[PayoutDestination]:
    """The provider's destinations, oldest first (disabled ones only with ``include_disabled``)."""
    stmt = select(PayoutDestination).where(PayoutDestination.provider_id == provider_id)
    if not include_disabled:
        stmt = stmt.where(PayoutDestination.disabled.is_(False))
    return list((await session.scalars(stmt.order_by(PayoutDestination.id))).all())


async def disable_destination(session: AsyncSession, provider_id: int, destination_id: int) -> PayoutDestination:
    """Stop paying to destination ``destination_id`` (it stays on record for past payouts; payouts
    already created keep their snapshot). It is no longer the default: the provider registers or
    picks another before the next payout in that currency. Raises ``NotFound`` (``destinationId``)
    when it is not one of this provider's destinations."""
    destination = await session.scalar(
        select(PayoutDestination)
        .where(PayoutDestination.id == destination_id, PayoutDestination.provider_id == provider_id)
        .with_for_update(key_share=True)
    )
    if destination is None:
        raise NotFound("No such payout destination", field="destinationId")
    destination.disabled = True
    destination.is_default = False
    await session.flush()
    return destination


async def default_destination(session: AsyncSession, provider_id: int, currency: str) -> PayoutDestination | None:
    """The provider's default, enabled destination for ``currency``, if any."""
    return await session.scalar(
        select(PayoutDestination).where(
            PayoutDestination.provider_id == provider_id, PayoutDestination.currency == currency.upper(),
            PayoutDestination.is_default.is_(True), PayoutDestination.disabled.is_(False),
        )
    )


def snapshot(destination: PayoutDestination) -> dict:
    """The destination as sent to the gateway (stored on the payout: a later edit never changes
    where an existing payout goes). Keys are ``gateways.base.PayoutDestination``'s fields."""
    return {
        "kind": destination.kind, "holder_name": destination.holder_name, "country_code": destination.country_code,
        "phone": destination.phone, "operator": destination.operator, "bank_code": destination.bank_code,
        "account_number": destination.account_number,
    }


def masked_destination(snap: dict) -> str:
    """A destination for emails and lists: only the last 4 digits of the number
    (``MTN mobile money ****4567``, ``bank account ****6789``)."""
    number = snap.get("phone") if snap.get("kind") == "mobile_money" else snap.get("account_number")
    last4 = "".join(ch for ch in (number or "") if ch.isdigit())[-4:]
    if snap.get("kind") == "mobile_money":
        return f"{(snap.get('operator') or '').upper()} mobile money ****{last4}".strip()
    return f"bank account ****{last4}"


# --- creating payouts -----------------------------------------------------------------------------


def _open_dispute_on(service_request_id: ColumnElement[int]) -> Exists:
    """EXISTS an open dispute on the order ``service_request_id`` (correlated to the outer query)."""
    return exists().where(Dispute.service_request_id == service_request_id, Dispute.status == "open")


def _payable_earnings(provider_id: int, currency: str) -> Select[tuple[ProviderEarning]]:
    """Earnings a payout may take now: available, non-zero, and no open dispute on their order."""
    return select(ProviderEarning).where(
        ProviderEarning.provider_id == provider_id,
        ProviderEarning.currency == currency,
        ProviderEarning.status == "available",
        ProviderEarning.amount_minor > 0,
        ~_open_dispute_on(ProviderEarning.service_request_id),
    )


def _minimum(currency: str) -> int:
    """settings.payout_minimum_minor for ``currency``; any positive amount when it is not set."""
    return max(1, int(get_settings().payout_minimum_minor.get(currency, 1)))


async def _failures_in_a_row(session: AsyncSession, provider_id: int, destination_id: int) -> int:
    """Failed payouts to ``destination_id`` since its last paid one (through the provider index)."""
    mine = and_(Payout.provider_id == provider_id, Payout.destination_id == destination_id)
    last_paid = select(func.coalesce(func.max(Payout.id), 0)).where(mine, Payout.status == "paid").scalar_subquery()
    failed = select(func.count()).select_from(Payout).where(mine, Payout.status == "failed", Payout.id > last_paid)
    return int(await session.scalar(failed) or 0)


async def _create_payout(
    session: AsyncSession, provider_id: int, currency: str, idempotency_key: str | None, *, scheduled: bool
) -> Payout:
    currency = currency.upper()
    destination = await default_destination(session, provider_id, currency)
    if destination is None:
        raise NoPayoutDestination(f"Register a default payout destination for {currency} first")
    if scheduled and await _failures_in_a_row(session, provider_id, destination.id) >= MAX_FAILURES_PER_DESTINATION:
        raise DestinationFailing(
            f"The last {MAX_FAILURES_PER_DESTINATION} payouts to this destination failed: check it or add another"
        )
    # Lock the earnings in id order (no deadlock between two runs). A concurrent run that locked
    # them first has moved them to in_payout when it commits: PostgreSQL re-checks the WHERE on the
    # new row version, so this one then finds nothing. Nothing is ever paid twice.
    locked = _payable_earnings(provider_id, currency).order_by(ProviderEarning.id).with_for_update(of=ProviderEarning, key_share=True)
    earnings = list((await session.scalars(locked)).all())
    if earnings:
        # A dispute opened while this run waited for an earning's lock (dispute.open_dispute locks
        # the order's earning before inserting) is not in the statement's snapshot: ask again, in a
        # new snapshot, and leave those orders out.
        disputed = set((await session.scalars(
            select(Dispute.service_request_id).where(
                Dispute.status == "open",
                Dispute.service_request_id.in_([e.service_request_id for e in earnings]),
            )
        )).all())
        earnings = [e for e in earnings if e.service_request_id not in disputed]
    total = sum(e.amount_minor for e in earnings)
    minimum = _minimum(currency)
    if total < minimum:
        raise BelowPayoutMinimum(
            f"The available balance {Money(total, currency).formatted()} is below the payout minimum "
            f"{Money(minimum, currency).formatted()}"
        )
    try:
        gateway_name = registry.gateway_for_currency(currency).name
    except registry.UnknownGateway as exc:
        raise NoPayoutGateway(f"No payment gateway pays out in {currency}") from exc
    payout = Payout(
        reference=f"po_{secrets.token_hex(12)}", provider_id=provider_id, destination_id=destination.id,
        destination=snapshot(destination), gateway=gateway_name, amount_minor=total, currency=currency,
        status="pending", attempts=0, idempotency_key=idempotency_key,
    )
    session.add(payout)
    await session.flush()
    for earning in earnings:
        earning.status = "in_payout"
        earning.payout_id = payout.id
    await ledger.post(
        session, "payout_sent", f"payout_sent:{payout.reference}",
        [(ledger.provider_payable(provider_id, currency), -total),
         (ledger.payout_in_transit(provider_id, currency), total)],
        memo=f"payout {payout.reference}: {len(earnings)} order(s)",
    )
    session.add(PayoutStatusChange(
        payout_id=payout.id, from_status=None, to_status="pending", note=f"{len(earnings)} earning(s)",
    ))
    outbox.enqueue_actor(session, "send_payout", queue="payments", payout_id=payout.id)
    await session.flush()
    log.info("payout.created", payout_id=payout.id, reference=payout.reference, provider_id=provider_id,
             amount_minor=total, currency=currency, earnings=len(earnings))
    return payout


async def create_payout_for_provider(
    session: AsyncSession, provider_id: int, currency: str, *, idempotency_key: str | None = None
) -> Payout | None:
    """Batch the provider's payable earnings in ``currency`` into one payout, in the caller's
    transaction: the earnings (available, amount > 0, no open dispute on their order) are locked
    ``FOR UPDATE`` and move to ``in_payout``; the payout (reference ``po_<24 hex>``, a snapshot of
    the default destination, the gateway settings.gateway_routes names for the currency) is written
    with its ``payout_sent`` ledger transaction, its history row and a ``send_payout`` job (outbox,
    queue ``payments``).

    Returns ``None`` (nothing written) when the provider has no default destination for the
    currency, when the total is below settings.payout_minimum_minor[currency], when no gateway is
    routed for the currency, or when the last ``MAX_FAILURES_PER_DESTINATION`` payouts to the
    default destination failed (the provider must check it or register another; a failed payout
    is otherwise retried by the next run with a new payout). Raises ``ledger.InsufficientFunds`` if the ledger disagrees with the
    earnings (a bug: the payable account would go negative)."""
    try:
        async with session.begin_nested():
            return await _create_payout(session, provider_id, currency, idempotency_key, scheduled=True)
    except (NoPayoutDestination, BelowPayoutMinimum, NoPayoutGateway, DestinationFailing) as exc:
        log.info("payout.skipped", provider_id=provider_id, currency=currency, reason=exc.code)
        return None


async def run_payouts() -> int:
    """The scheduled batch (every settings.payout_interval_seconds): one statement finds every
    (provider, currency) with payable earnings and a default destination; each gets
    ``create_payout_for_provider`` in its own transaction. Returns how many payouts were created.
    Safe to run concurrently with itself: row locks make sure an earning joins one payout only.
    The caller relays the outbox afterwards (the ``send_payout`` jobs)."""
    has_default = exists().where(
        PayoutDestination.provider_id == ProviderEarning.provider_id,
        PayoutDestination.currency == ProviderEarning.currency,
        PayoutDestination.is_default.is_(True), PayoutDestination.disabled.is_(False),
    )
    async with session_scope() as session:
        pairs = (
            await session.execute(
                select(ProviderEarning.provider_id, ProviderEarning.currency)
                .where(
                    ProviderEarning.status == "available", ProviderEarning.amount_minor > 0,
                    ~_open_dispute_on(ProviderEarning.service_request_id), has_default,
                )
                .group_by(ProviderEarning.provider_id, ProviderEarning.currency)
                .order_by(ProviderEarning.provider_id, ProviderEarning.currency)
            )
        ).all()
    made = 0
    for provider_id, currency in pairs:
        async with session_scope() as session:
            if await create_payout_for_provider(session, provider_id, currency) is not None:
                made += 1
    if made:
        log.info("payouts.run", payouts=made, candidates=len(pairs))
    return made


async def request_payout(
    session: AsyncSession, provider_user: User, currency: str, idempotency_key: str
) -> Payout:
    """A provider asks for an instant payout of its whole available balance in ``currency``, in
    the caller's transaction (the caller relays the outbox after commit). Idempotent
    (domain/shared/idempotency.py, scope ``payout:user:<id>``): the same key and currency return the same
    payout; the same key with another currency raises ``IdempotencyKeyReused``.

    Raises ``Forbidden`` (not a provider account), ``NoPayoutDestination``, ``BelowPayoutMinimum``
    (the balance not held by disputes is below settings.payout_minimum_minor), ``NoPayoutGateway``,
    ``idempotency.InvalidIdempotencyKey``. On error nothing is written, the key included."""
    if provider_user.role != "provider":
        raise Forbidden("Only providers request payouts")
    provider_id = await session.scalar(select(Provider.id).where(Provider.user_id == provider_user.id))
    if provider_id is None:
        raise Forbidden("This account has no provider profile")
    currency = (currency or "").strip().upper()
    scope = f"payout:user:{provider_user.id}"
    async with session.begin_nested():  # an error also rolls the claim back: the key can be used again
        earlier = await idempotency.claim(session, scope, idempotency_key, idempotency.fingerprint(currency))
        if earlier is not None and earlier.get("payout_id"):
            found = await session.get(Payout, earlier["payout_id"])
            assert found is not None
            return found
        payout = await _create_payout(session, provider_id, currency, idempotency_key, scheduled=False)
        await idempotency.remember(session, scope, idempotency_key, {"payout_id": payout.id})
    return payout


# --- sending and settling -------------------------------------------------------------------------


async def send_payout(payout_id: int) -> str:
    """Send payout ``payout_id`` to its gateway and apply the answer (the ``send_payout`` actor).

    First transaction: lock the payout; anything but ``pending``/``sent`` is left alone (returns
    its status, ``unknown`` if missing); ``attempts`` + 1. Then, outside any transaction: on a retry
    (or a payout the gateway already accepted) ask ``fetch_payout(reference)`` first, and create it
    only when the gateway does not know it (a non-retryable error such as 404); otherwise
    ``create_payout`` with our reference as the idempotency key. Second transaction:
    ``apply_payout_status``. Returns the payout's status afterwards.

    A retryable ``GatewayError`` (timeout, 5xx, open circuit) is raised for the actor to retry; a
    non-retryable one from the create (a refusal) fails the payout, unless the gateway, asked by
    reference, knows it after all (a duplicate-reference refusal): the money goes back to the
    provider's payable balance."""
    async with session_scope() as session:
        payout = await session.scalar(select(Payout).where(Payout.id == payout_id).with_for_update(key_share=True))
        if payout is None:
            return "unknown"
        if payout.status not in ("pending", "sent"):
            return payout.status
        payout.attempts += 1
        ask_first = payout.attempts > 1 or payout.status == "sent"
        reference, gateway_name = payout.reference, payout.gateway
        amount_minor, currency = payout.amount_minor, payout.currency
        destination = GatewayDestination(**payout.destination)
    gateway = registry.get_gateway(gateway_name)
    result: PayoutResult | None = None
    if ask_first:
        try:
            result = await gateway.fetch_payout(reference)
        except GatewayError as exc:
            if exc.retryable:
                raise
            result = None  # the gateway never saw it: create it now (idempotent on the reference anyway)
    if result is None:
        try:
            result = await gateway.create_payout(
                reference=reference, amount_minor=amount_minor, currency=currency, destination=destination,
                narration=f"Odim payout {reference}",
            )
        except GatewayError as exc:
            if exc.retryable:
                raise
            result = await _after_refusal(gateway, payout_id, reference, exc)
    async with session_scope() as session:
        return await apply_payout_status(
            session, reference, result.status, gateway_id=result.gateway_id, failure_reason=result.failure_reason
        )


async def _after_refusal(gateway: PaymentGateway, payout_id: int, reference: str, refusal: GatewayError) -> PayoutResult:
    """The gateway refused to create the payout. A gateway that refuses a duplicate reference (a
    concurrent delivery of the same job created it a moment ago) still knows the payout: ask once
    by reference; only when it does not know it is the payout failed."""
    try:
        return await gateway.fetch_payout(reference)
    except GatewayError as exc:
        if exc.retryable:
            raise
    log.warning("payout.refused", payout_id=payout_id, gateway=gateway.name, error=str(refusal))
    return PayoutResult(reference=reference, status="failed", failure_reason=str(refusal)[:500])


def _transition(session: AsyncSession, payout: Payout, to_status: str, note: str = "") -> None:
    MACHINE.move(payout, to_status, actor="system", session=session, history=lambda frm, to: PayoutStatusChange(
        payout_id=payout.id, from_status=frm, to_status=to, note=note))
    payout.updated_at = datetime.now(UTC)


async def apply_payout_status(
    session: AsyncSession, reference: str, status: str, *, gateway_id: str | None = None,
    failure_reason: str | None = None,
) -> str:
    """Apply the gateway's view of payout ``reference`` (from ``send_payout``, a payout webhook or
    reconciliation), in the caller's transaction, with the payout row locked:

    * ``pending``: the gateway accepted it; ``pending -> sent`` (``sent_at``).
    * ``paid``: ``-> paid`` (through ``sent``): ledger ``payout_paid`` (payout_in_transit ->
      gateway_clearing), its earnings ``paid``, ``settled_at``, email to the provider.
    * ``failed``: ``pending | sent -> failed``: ledger ``payout_failed`` (payout_in_transit -> provider_payable),
      its earnings back to ``available`` without payout (the next run pays them with a new payout
      and reference), ``failure_reason``, email to the provider.

    Repeated news changes nothing. A final payout never moves: ``failed`` after ``paid`` is logged
    and the operator alerted (returns ``paid``); ``paid`` after ``failed`` is logged, the operator
    alerted and returns ``conflict`` (the money may have to be recovered). Returns the payout's status
    afterwards, ``conflict``, or ``unknown`` for a reference we never made."""
    payout = await session.scalar(select(Payout).where(Payout.reference == reference).with_for_update(key_share=True))
    if payout is None:
        log.warning("payout.unknown_reference", reference=reference)
        return "unknown"
    if gateway_id and not payout.gateway_id:
        payout.gateway_id = gateway_id
    if status not in ("pending", "paid", "failed"):
        raise DomainError(f"unknown payout status {status!r}", code=MoneyErrorCode.INVALID_STATUS)
    if payout.status in FINAL_STATUSES:
        if status == payout.status or status == "pending":
            return payout.status
        await _alert_conflict(session, payout, status)
        return "conflict" if status == "paid" else payout.status
    now = datetime.now(UTC)
    if status == "pending":
        if payout.status == "pending":
            _transition(session, payout, "sent", "accepted by the gateway")
            payout.sent_at = now
            await feed.payout_status_changed(session, payout)
        return payout.status
    provider_id, currency, amount = payout.provider_id, payout.currency, payout.amount_minor
    if status == "paid":
        if payout.status == "pending":  # paid at once: it was accepted on the way
            _transition(session, payout, "sent", "accepted by the gateway")
            payout.sent_at = now
        await ledger.post(
            session, "payout_paid", f"payout_paid:{payout.reference}",
            [(ledger.payout_in_transit(provider_id, currency), -amount),
             (ledger.gateway_clearing(payout.gateway, currency, stripe=ledger.stripe_for(payout.id)), amount)],
            memo=f"payout {payout.reference} paid",
        )
        _transition(session, payout, "paid", "paid by the gateway")
        payout.settled_at = now
        await session.execute(
            update(ProviderEarning).where(ProviderEarning.payout_id == payout.id).values(status="paid", updated_at=now)
        )
    else:
        await ledger.post(
            session, "payout_failed", f"payout_failed:{payout.reference}",
            [(ledger.payout_in_transit(provider_id, currency), -amount),
             (ledger.provider_payable(provider_id, currency), amount)],
            memo=f"payout {payout.reference} failed: money back to payable",
        )
        payout.failure_reason = (failure_reason or "refused by the gateway")[:2000]
        _transition(session, payout, "failed", payout.failure_reason)
        await session.execute(
            update(ProviderEarning)
            .where(ProviderEarning.payout_id == payout.id)
            .values(status="available", payout_id=None, updated_at=now)
        )
        log.warning("payout.failed", payout_id=payout.id, reference=payout.reference, reason=payout.failure_reason)
    await _email_provider(session, payout)
    await feed.payout_status_changed(session, payout)
    return payout.status


async def _email_provider(session: AsyncSession, payout: Payout) -> None:
    row = (
        await session.execute(
            select(User.email, User.full_name, Provider.display_name)
            .join(User, User.id == Provider.user_id)
            .where(Provider.id == payout.provider_id)
        )
    ).first()
    if row is None:
        log.warning("payout.no_provider_account", payout_id=payout.id)
        return
    await notification.queue_email(
        session, dedupe_key=f"payout:{payout.reference}:{payout.status}", kind="payout", to=row.email,
        template="payout_sent",
        context={"name": row.full_name or row.display_name, "payout_reference": payout.reference,
                 "amount": Money(payout.amount_minor, payout.currency).formatted(),
                 "destination": masked_destination(payout.destination), "outcome": payout.status},
    )


async def _alert_conflict(session: AsyncSession, payout: Payout, reported: str) -> None:
    log.error("payout.conflict", payout_id=payout.id, reference=payout.reference, ours=payout.status,
              gateway=reported)
    amount = Money(payout.amount_minor, payout.currency).formatted()
    body = (
        f"Payout {payout.reference} ({amount}, provider {payout.provider_id}, gateway {payout.gateway}) is "
        f"{payout.status} here but the gateway now reports it {reported}. "
        + ("Its money went back to the provider's payable balance and may be paid again: recover or "
           "cancel the duplicate." if reported == "paid" else "Check whether the provider received the money.")
    )
    await notification.queue_email(
        session, dedupe_key=f"payout_conflict:{payout.reference}:{reported}", kind="operator_alert",
        to=get_settings().operator_email, template="operator_alert",
        context={"subject": f"Payout {payout.reference} conflict: {payout.status} here, {reported} at the gateway",
                 "body": body},
    )


async def payout_by_reference(session: AsyncSession, reference: str) -> Payout | None:
    """The payout with our reference ``reference`` (``po_...``), if any."""
    return await session.scalar(select(Payout).where(Payout.reference == reference))


# --- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EarningsSummary:
    """A provider's earnings in one currency, minor units: ``available`` (payable now), ``held``
    (available but its order has an open dispute), ``in_payout`` (in a payout not settled yet),
    ``paid_out`` (settled payouts)."""

    currency: str
    available_minor: int
    held_minor: int
    in_payout_minor: int
    paid_out_minor: int


async def earnings_summary(session: AsyncSession, provider_id: int) -> list[EarningsSummary]:
    """Per currency (sorted), in one statement."""
    disputed = _open_dispute_on(ProviderEarning.service_request_id)
    amount = ProviderEarning.amount_minor
    available = ProviderEarning.status == "available"

    def total(condition):
        return func.coalesce(func.sum(case((condition, amount), else_=0)), 0)

    rows = (
        await session.execute(
            select(
                ProviderEarning.currency,
                total(and_(available, ~disputed)), total(and_(available, disputed)),
                total(ProviderEarning.status == "in_payout"), total(ProviderEarning.status == "paid"),
            )
            .where(ProviderEarning.provider_id == provider_id)
            .group_by(ProviderEarning.currency)
            .order_by(ProviderEarning.currency)
        )
    ).all()
    return [EarningsSummary(c, int(a), int(h), int(i), int(p)) for c, a, h, i, p in rows]


def _page_size(first: int) -> int:
    return max(1, min(first, get_settings().max_page_size))


async def list_payouts(
    session: AsyncSession, provider_id: int | None, *, first: int = 20, after: str | None = None
) -> tuple[list[tuple[Payout, str]], bool, int]:
    """Payouts of one provider (``None``: all, for admins), newest first, keyset-paginated on id
    (``first`` capped at settings.max_page_size). Returns ``([(payout, cursor)], has_next_page,
    total_count)`` in two statements. Raises ``InvalidCursor``."""
    stmt = select(Payout).order_by(Payout.id.desc()).limit(_page_size(first) + 1)
    total_stmt = select(func.count()).select_from(Payout)
    if provider_id is not None:
        stmt = stmt.where(Payout.provider_id == provider_id)
        total_stmt = total_stmt.where(Payout.provider_id == provider_id)
    if after:
        stmt = stmt.where(Payout.id < pagination.decode("payout", after))
    rows = (await session.scalars(stmt)).all()
    total = int(await session.scalar(total_stmt) or 0)
    size = _page_size(first)
    return [(p, pagination.encode("payout", p.id)) for p in rows[:size]], len(rows) > size, total


async def list_earnings(
    session: AsyncSession, provider_id: int, *, first: int = 20, after: str | None = None,
    currency: str | None = None,
) -> tuple[list[tuple[ProviderEarning, bool, str]], bool]:
    """The provider's earnings (one per completed order), newest first, keyset-paginated on id.
    Returns ``([(earning, held, cursor)], has_next_page)`` in one statement; ``held`` is True while
    a dispute is open on the earning's order. Raises ``InvalidCursor``."""
    held = _open_dispute_on(ProviderEarning.service_request_id)
    size = _page_size(first)
    stmt = (
        select(ProviderEarning, held.label("held"))
        .where(ProviderEarning.provider_id == provider_id)
        .order_by(ProviderEarning.id.desc())
        .limit(size + 1)
    )
    if currency:
        stmt = stmt.where(ProviderEarning.currency == currency.upper())
    if after:
        stmt = stmt.where(ProviderEarning.id < pagination.decode("earning", after))
    rows = (await session.execute(stmt)).all()
    return [(e, bool(h), pagination.encode("earning", e.id)) for e, h in rows[:size]], len(rows) > size
