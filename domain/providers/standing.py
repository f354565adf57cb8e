"""A provider's standing: rating flags, strikes, suspension and reinstatement (the two-strike policy).

* After a change of its rating aggregates (domain/reviews/review.py publishes reviews), a provider whose
  average is below settings.rating_flag_threshold (3.5) with at least settings.rating_flag_min_jobs
  (10) completed jobs (completed catalogue orders assigned to it + its completed visits) gets
  ``flagged_at``/``flag_reason`` (once: an existing flag is kept), an audit row ``provider.flagged``
  and an operator email. The flag is cleared when the average recovers (``provider.unflagged``) or
  when an admin acts on the provider (strike, suspension, reinstatement).
* ``record_strike`` (admin) adds a strike (reason, optional order/visit/dispute reference, audited
  ``provider.strike_recorded``, emailed to the provider); the second strike (``strike_count`` >= 2)
  suspends the provider in the same transaction.
* ``suspend`` / ``reinstate`` (admin): audited ``provider.suspended`` / ``provider.reinstated`` and
  emailed. Reinstatement keeps ``strike_count`` unless the admin asks to reset it
  (``reset_strikes``): a reinstated provider is then on its last chance. Strikes are never deleted.
* Suspended = no new work: assignment (domain/orders/service_request.py), holds and take-overs
  (domain/bookings/booking.py) call ``ensure_not_suspended`` and refuse with ``ProviderSuspended``
  (``PROVIDER_SUSPENDED``); search and substitution candidates exclude it
  (``verified AND available AND NOT suspended``). Money is untouched: earnings of orders under an
  open dispute stay held (domain/money/payout.py).

Lock order: the provider's row first (``lock_provider``), as everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messaging import notification
from domain.providers.errors import ProvidersErrorCode
from domain.providers.locks import lock_provider
from domain.shared import audit, pagination
from domain.shared.errors import CommonErrorCode, DomainError, NotFound
from models import Booking, Dispute, Provider, ProviderStrike, ServiceRequest, User
from settings import get_settings

MAX_REASON = 2000


class ProviderSuspended(DomainError):
    """The provider is suspended (two strikes or an admin): it takes no new work."""

    code = ProvidersErrorCode.PROVIDER_SUSPENDED
    field = "providerId"


class NotSuspended(DomainError):
    code = ProvidersErrorCode.NOT_SUSPENDED
    field = "providerId"


class AlreadySuspended(DomainError):
    code = ProvidersErrorCode.ALREADY_SUSPENDED
    field = "providerId"


async def completed_jobs(session: AsyncSession, provider_id: int) -> int:
    """Completed catalogue orders assigned to the provider + its completed visits (one statement)."""
    return int(await session.scalar(text(
        "SELECT (SELECT count(*) FROM service_requests WHERE assigned_provider_id = :p AND status = 'completed'"
        " AND kind = 'purchase') + (SELECT count(*) FROM bookings WHERE provider_id = :p AND completed_at IS NOT NULL)"
    ), {"p": provider_id}))


async def check_flag(session: AsyncSession, provider: Provider, now: datetime) -> None:
    """After a change of ``provider``'s rating aggregates (row locked by the caller): flag it when its
    average is below settings.rating_flag_threshold after settings.rating_flag_min_jobs completed jobs
    (audited, operators emailed), clear the flag when it recovered."""
    settings = get_settings()
    low = provider.review_count > 0 and provider.rating < settings.rating_flag_threshold
    if low and provider.flagged_at is None:
        jobs = await completed_jobs(session, provider.id)
        if jobs < settings.rating_flag_min_jobs:
            return
        provider.flagged_at = now
        provider.flag_reason = (f"Average rating {provider.rating:.2f} below {settings.rating_flag_threshold} "
                                f"after {jobs} completed jobs")
        await audit.record(session, action="provider.flagged", subject_type="Provider", subject_id=provider.id,
                           details={"rating": provider.rating, "reviewCount": provider.review_count,
                                    "completedJobs": jobs}, actor_id=None, actor_role="system")
        await notification.queue_email(
            session, dedupe_key=f"provider_flagged:{provider.id}:{now.isoformat()}", kind="operator_alert",
            to=settings.operator_email, template="operator_alert",
            context={"subject": f"Provider flagged: {provider.display_name}",
                     "body": f"Provider {provider.id} ({provider.display_name}) was flagged for review: "
                             f"{provider.flag_reason}.\nSee flaggedProviders; record a strike or suspend it if needed."},
        )
    elif not low and provider.flagged_at is not None:
        provider.flagged_at = None
        provider.flag_reason = None
        await audit.record(session, action="provider.unflagged", subject_type="Provider", subject_id=provider.id,
                           details={"rating": provider.rating, "reviewCount": provider.review_count},
                           actor_id=None, actor_role="system")


def _reason(value: str, field: str = "reason") -> str:
    value = (value or "").strip()
    if not value:
        raise DomainError("Say why", field=field, code=ProvidersErrorCode.REASON_REQUIRED)
    if len(value) > MAX_REASON:
        raise DomainError(f"Limited to {MAX_REASON} characters", field=field, code=CommonErrorCode.TOO_LONG)
    return value


async def _owner(session: AsyncSession, provider: Provider) -> User | None:
    return await session.get(User, provider.user_id) if provider.user_id is not None else None


async def _email_provider(session: AsyncSession, provider: Provider, template: str, key: str, **context) -> None:
    owner = await _owner(session, provider)
    if owner is None:
        return
    await notification.queue_email(
        session, dedupe_key=key, kind="provider_standing", to=owner.email, user_id=owner.id, template=template,
        context={"name": owner.full_name or provider.display_name, "business_name": provider.display_name, **context},
    )


def _clear_flag(provider: Provider) -> None:
    provider.flagged_at = None
    provider.flag_reason = None


@dataclass(frozen=True)
class StrikeOutcome:
    """The strike written, the provider after it, and whether this strike suspended it."""

    strike: ProviderStrike
    provider: Provider
    suspended_now: bool


async def _check_reference(
    session: AsyncSession, provider_id: int, service_request_id: int | None, booking_id: int | None,
    dispute_id: int | None,
) -> None:
    if sum(x is not None for x in (service_request_id, booking_id, dispute_id)) > 1:
        raise DomainError("Name at most one of serviceRequestId, bookingId, disputeId", field="bookingId",
                          code=CommonErrorCode.INVALID)
    if service_request_id is not None:
        owner = await session.scalar(select(ServiceRequest.assigned_provider_id)
                                     .where(ServiceRequest.id == service_request_id))
        if owner != provider_id:
            raise NotFound("No such order of this provider", field="serviceRequestId")
    if booking_id is not None:
        owner = await session.scalar(select(Booking.provider_id).where(Booking.id == booking_id))
        if owner != provider_id:
            raise NotFound("No such visit of this provider", field="bookingId")
    if dispute_id is not None:
        owner = await session.scalar(select(ServiceRequest.assigned_provider_id)
                                     .join(Dispute, Dispute.service_request_id == ServiceRequest.id)
                                     .where(Dispute.id == dispute_id))
        if owner != provider_id:
            raise NotFound("No such dispute about this provider", field="disputeId")


async def record_strike(
    session: AsyncSession, provider_id: int, *, actor: User, reason: str, service_request_id: int | None = None,
    booking_id: int | None = None, dispute_id: int | None = None, now: datetime | None = None,
) -> StrikeOutcome:
    """An admin records a strike for a serious complaint ("Two-strike policy"), optionally
    about one order, visit or dispute of this provider. The second strike suspends the provider in
    this transaction (``suspend``). Audited ``provider.strike_recorded``; the provider is emailed.
    Raises ``NotFound`` (provider, or a reference not about it), DomainError ``REASON_REQUIRED`` /
    ``TOO_LONG``; nothing is written on error."""
    now = now or datetime.now(UTC)
    reason = _reason(reason)
    provider = await lock_provider(session, provider_id)
    await _check_reference(session, provider_id, service_request_id, booking_id, dispute_id)
    strike = ProviderStrike(provider_id=provider_id, reason=reason, service_request_id=service_request_id,
                            booking_id=booking_id, dispute_id=dispute_id, created_by_user_id=actor.id)
    session.add(strike)
    await session.flush()
    provider.strike_count += 1
    _clear_flag(provider)
    await audit.record(session, action="provider.strike_recorded", subject_type="Provider", subject_id=provider_id,
                       details={"strikeId": strike.id, "strikeCount": provider.strike_count})
    await _email_provider(session, provider, "provider_strike", f"provider_strike:{strike.id}",
                          reason=reason, strike_count=provider.strike_count)
    suspended_now = False
    if provider.strike_count >= 2 and not provider.suspended:
        await _suspend(session, provider, actor=actor, now=now, trigger="second_strike",
                       reason=f"Second strike: {reason}")
        suspended_now = True
    return StrikeOutcome(strike, provider, suspended_now)


async def _suspend(session: AsyncSession, provider: Provider, *, actor: User, now: datetime, trigger: str,
                   reason: str) -> None:
    provider.suspended = True
    provider.suspended_at = now
    provider.suspension_reason = reason[:MAX_REASON]
    _clear_flag(provider)
    await audit.record(session, action="provider.suspended", subject_type="Provider", subject_id=provider.id,
                       details={"trigger": trigger, "strikeCount": provider.strike_count})
    await _email_provider(session, provider, "provider_suspended",
                          f"provider_suspended:{provider.id}:{now.isoformat()}", reason=provider.suspension_reason)


async def suspend(session: AsyncSession, provider_id: int, *, actor: User, reason: str,
                  now: datetime | None = None) -> Provider:
    """An admin suspends a provider: no new work, hidden from search (``providers.suspended``).
    Audited ``provider.suspended``, emailed. Raises ``NotFound``, ``AlreadySuspended``, DomainError
    ``REASON_REQUIRED``/``TOO_LONG``. The caller invalidates discovery after commit."""
    reason = _reason(reason)
    provider = await lock_provider(session, provider_id)
    if provider.suspended:
        raise AlreadySuspended("This provider is already suspended")
    await _suspend(session, provider, actor=actor, now=now or datetime.now(UTC), trigger="admin", reason=reason)
    return provider


async def reinstate(session: AsyncSession, provider_id: int, *, actor: User, note: str,
                    reset_strikes: bool = False, now: datetime | None = None) -> Provider:
    """An admin lifts a suspension (``note`` says why, required). Strikes stay on record; the count
    is kept (the next strike suspends again) unless ``reset_strikes``. Audited
    ``provider.reinstated``, emailed. Raises ``NotFound``, ``NotSuspended``, DomainError
    ``REASON_REQUIRED`` (field note) / ``TOO_LONG``. The caller invalidates discovery after commit."""
    note = _reason(note, "note")
    now = now or datetime.now(UTC)
    provider = await lock_provider(session, provider_id)
    if not provider.suspended:
        raise NotSuspended("This provider is not suspended")
    provider.suspended = False
    provider.suspended_at = None
    provider.suspension_reason = None
    if reset_strikes:
        provider.strike_count = 0
    _clear_flag(provider)
    await audit.record(session, action="provider.reinstated", subject_type="Provider", subject_id=provider.id,
                       details={"strikeCount": provider.strike_count, "resetStrikes": reset_strikes})
    await _email_provider(session, provider, "provider_reinstated",
                          f"provider_reinstated:{provider.id}:{now.isoformat()}", note=note)
    return provider


async def strikes_of(session: AsyncSession, provider_id: int) -> list[ProviderStrike]:
    """A provider's strikes, newest first (one statement)."""
    return list((await session.scalars(
        select(ProviderStrike).where(ProviderStrike.provider_id == provider_id)
        .order_by(ProviderStrike.id.desc())
    )).all())


async def flagged_providers(
    session: AsyncSession, *, first: int, after: str | None = None
) -> tuple[list[tuple[Provider, str]], bool]:
    """The admins' queue: flagged providers, oldest flag first, ``first`` per page after ``after``, in
    one statement (index ix_providers_flagged). Raises ``InvalidCursor``."""
    stmt = (select(Provider).where(Provider.flagged_at.is_not(None))
            .order_by(Provider.flagged_at, Provider.id).limit(first + 1))
    if after:
        at, ident = pagination.decode_at(after)
        stmt = stmt.where(or_(Provider.flagged_at > at, and_(Provider.flagged_at == at, Provider.id > ident)))
    rows = (await session.scalars(stmt)).all()
    return [(p, pagination.encode_at(p.flagged_at, p.id)) for p in rows[:first]], len(rows) > first


def ensure_not_suspended(provider: Provider | None) -> None:
    """Raise ``ProviderSuspended`` when ``provider`` is suspended (the work paths call it first, so
    the refusal says why)."""
    if provider is not None and provider.suspended:
        raise ProviderSuspended("This provider is suspended and takes no new work")
