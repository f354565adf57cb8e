"""Payout resolvers: a provider's earnings, payouts and payout destinations; the admin's payout
list and payout run."""

from __future__ import annotations

from dataclasses import dataclass

from domain.money import payout as payout_domain
from domain.shared import outbox
from domain.shared.errors import DomainError
from models import Payout, PayoutDestination, User
from models.db import session_scope
from resolvers import loaders
from resolvers.context import Context, forbidden
from resolvers.errors import PayloadError, bad_input, to_payload_error
from resolvers.ids import decode_id
from resolvers.pagination import page_size


async def my_provider(ctx: Context) -> tuple[User, int]:
    """The calling provider account and its provider profile id. UNAUTHENTICATED when anonymous,
    FORBIDDEN for other roles or a provider account without a profile."""
    user = await ctx.require_user()
    if user.role != "provider":
        raise forbidden("Only providers have earnings and payouts")
    provider_id = await loaders.provider_ids_by_user(ctx).load(user.id)
    if provider_id is None:
        raise forbidden("This account has no provider profile")
    return user, provider_id


async def my_earnings(ctx: Context) -> list[payout_domain.EarningsSummary]:
    """The provider's earnings per currency (one statement)."""
    _, provider_id = await my_provider(ctx)
    async with ctx.db() as session:
        return await payout_domain.earnings_summary(session, provider_id)


async def my_destinations(ctx: Context) -> list[PayoutDestination]:
    """The provider's enabled payout destinations, oldest first."""
    _, provider_id = await my_provider(ctx)
    async with ctx.db() as session:
        return await payout_domain.list_destinations(session, provider_id)


@dataclass
class PayoutPage:
    items: list[tuple[Payout, str]]
    has_next_page: bool
    total_count: int


async def _payouts(ctx: Context, provider_id: int | None, first: int | None, after: str | None) -> PayoutPage:
    try:
        size = page_size(first)
        async with ctx.db() as session:
            rows, has_next, total = await payout_domain.list_payouts(session, provider_id, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc
    return PayoutPage(rows, has_next, total)


async def my_payouts(ctx: Context, *, first: int | None, after: str | None) -> PayoutPage:
    """The provider's payouts, newest first (two statements: page and count)."""
    _, provider_id = await my_provider(ctx)
    return await _payouts(ctx, provider_id, first, after)


async def all_payouts(ctx: Context, *, first: int | None, after: str | None) -> PayoutPage:
    """Admin: every provider's payouts, newest first."""
    await ctx.require_admin()
    return await _payouts(ctx, None, first, after)


@dataclass
class DestinationResult:
    destination: PayoutDestination | None
    errors: list[PayloadError]


async def register_destination(
    ctx: Context, *, kind: str, currency: str, country_code: str, holder_name: str, phone: str | None,
    operator: str | None, bank_code: str | None, account_number: str | None, make_default: bool,
) -> DestinationResult:
    """Provider: add a payout destination. Every input problem comes back at once."""
    _, provider_id = await my_provider(ctx)
    try:
        async with session_scope() as session:
            destination = await payout_domain.register_destination(
                session, provider_id, kind=kind, currency=currency, country_code=country_code,
                holder_name=holder_name, phone=phone, operator=operator, bank_code=bank_code,
                account_number=account_number, make_default=make_default,
            )
    except payout_domain.InvalidPayoutDestination as exc:
        return DestinationResult(None, [to_payload_error(e) for e in exc.errors])
    except DomainError as exc:
        return DestinationResult(None, [to_payload_error(exc)])
    return DestinationResult(destination, [])


async def disable_destination(ctx: Context, *, destination_id: str) -> DestinationResult:
    """Provider: stop paying to one of its destinations (NOT_FOUND for anyone else's)."""
    _, provider_id = await my_provider(ctx)
    try:
        did = decode_id(destination_id, "PayoutDestination", field="destinationId")
        async with session_scope() as session:
            destination = await payout_domain.disable_destination(session, provider_id, did)
    except DomainError as exc:
        return DestinationResult(None, [to_payload_error(exc)])
    return DestinationResult(destination, [])


@dataclass
class PayoutResult:
    payout: Payout | None
    errors: list[PayloadError]


async def request_payout(ctx: Context, *, currency: str, idempotency_key: str) -> PayoutResult:
    """Provider: pay out the whole available balance in ``currency`` now (idempotent on the key);
    the gateway is called after commit (the ``send_payout`` job)."""
    user, _ = await my_provider(ctx)
    try:
        async with session_scope() as session:
            made = await payout_domain.request_payout(session, user, currency, idempotency_key)
    except DomainError as exc:
        return PayoutResult(None, [to_payload_error(exc)])
    await outbox.relay_quietly()
    return PayoutResult(made, [])


async def run_payouts(ctx: Context) -> int:
    """Admin: run the payout batch now (``payout.run_payouts``); returns how many payouts were made."""
    await ctx.require_admin()
    made = await payout_domain.run_payouts()
    await outbox.relay_quietly()
    return made


async def payout_nodes(ctx: Context, ids: list[int]) -> list[Payout | None]:
    """Payouts by global id: admins, or the provider they pay (others get null)."""
    viewer = await ctx.viewer()
    if viewer is None:
        return [None] * len(ids)
    mine = await loaders.provider_ids_by_user(ctx).load(viewer.id) if viewer.role == "provider" else None
    async with ctx.db() as session:
        found = [await session.get(Payout, i) for i in ids]
    return [p if p is not None and (viewer.role == "admin" or p.provider_id == mine) else None for p in found]


async def destination_nodes(ctx: Context, ids: list[int]) -> list[PayoutDestination | None]:
    """Payout destinations by global id: admins, or their provider (others get null)."""
    viewer = await ctx.viewer()
    if viewer is None:
        return [None] * len(ids)
    mine = await loaders.provider_ids_by_user(ctx).load(viewer.id) if viewer.role == "provider" else None
    async with ctx.db() as session:
        found = [await session.get(PayoutDestination, i) for i in ids]
    return [d if d is not None and (viewer.role == "admin" or d.provider_id == mine) else None for d in found]
