"""Email resolvers: an account's email preferences and opt-out, the admins' email log, and the
one-click unsubscribe endpoint of the emails (``/email/unsubscribe``, RFC 8058)."""

from __future__ import annotations

import html
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.dataloader import DataLoader

from domain.messaging import notification
from domain.shared.errors import DomainError
from models import Email, EmailDelivery
from models.db import session_scope
from resolvers.context import Context
from resolvers.errors import PayloadError, bad_input, to_payload_error
from resolvers.pagination import page_size


async def my_preferences(ctx: Context) -> notification.EmailPreferences:
    """The caller's email preferences. Raises UNAUTHENTICATED for anonymous callers."""
    user = await ctx.require_user()
    async with ctx.db() as session:
        return await notification.preferences(session, user)


@dataclass
class PreferencesResult:
    preferences: notification.EmailPreferences | None
    errors: list[PayloadError]


async def set_preference(ctx: Context, *, kind: str, email: bool) -> PreferencesResult:
    """Turn one kind of email on or off for the caller. Errors: ``TRANSACTIONAL_KIND`` (a
    transactional kind cannot be turned off), ``UNKNOWN_KIND``. Raises UNAUTHENTICATED."""
    user = await ctx.require_user()
    try:
        async with session_scope() as session:
            found = await notification.set_preference(session, user, kind, email)
    except DomainError as exc:
        return PreferencesResult(None, [to_payload_error(exc)])
    return PreferencesResult(found, [])


async def set_opt_out(ctx: Context, *, opt_out: bool) -> PreferencesResult:
    """Opt the caller's address out of (or back into) all non-transactional email. Raises UNAUTHENTICATED."""
    user = await ctx.require_user()
    async with session_scope() as session:
        found = await notification.set_opt_out(session, user, opt_out)
    return PreferencesResult(found, [])


async def emails(
    ctx: Context, *, status: str | None, first: int | None, after: str | None
) -> tuple[list[tuple[Email, str]], bool]:
    """Admin: emails newest first, optionally of one status, keyset-paginated (one statement)."""
    await ctx.require_admin()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            return await notification.list_emails(session, status=status, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc


async def email_nodes(ctx: Context, ids: list[int]) -> list[Email | None]:
    """Emails by global id: admins only (others get null)."""
    viewer = await ctx.viewer()
    if viewer is None or viewer.role != "admin":
        return [None] * len(ids)
    async with ctx.db() as session:
        return [await session.get(Email, i) for i in ids]


def deliveries(ctx: Context) -> DataLoader[int, list[EmailDelivery]]:
    """Per-request loader: an email id -> its delivery log, oldest first (one statement per batch)."""
    loader = ctx.loaders.get("email_deliveries")
    if loader is None:
        async def batch(ids: list[int]) -> list[list[EmailDelivery]]:
            async with ctx.db() as session:
                found = await notification.deliveries_for(session, list(ids))
            return [found[i] for i in ids]

        loader = ctx.loaders["email_deliveries"] = DataLoader(load_fn=batch)
    return loader


# --- /email/unsubscribe ----------------------------------------------------------------------------


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title></head><body style='font-family:system-ui;max-width:36rem;"
        f"margin:2rem auto;padding:0 1rem'><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status_code,
    )


async def unsubscribe_endpoint(request: Request) -> Response:
    """``/email/unsubscribe?token=...``: POST (what mail clients send for RFC 8058 one-click, body
    ``List-Unsubscribe=One-Click``, no cookies or login) opts the token's address out of all
    non-transactional email and answers 200; GET only shows a page with a button that POSTs
    (link scanners prefetch GETs, so a GET must change nothing). A malformed or forged token:
    400, nothing written."""
    token = request.query_params.get("token")
    if notification.address_of_unsubscribe_token(token) is None:
        return _page("Invalid link", "<p>This unsubscribe link is not valid.</p>", 400)
    if request.method == "GET":
        return _page(
            "Unsubscribe from Odim updates",
            "<p>Stop receiving status updates and other non-essential emails from Odim? Receipts, refunds, "
            "payouts and disputes are still sent.</p><form method=post>"
            "<input type=hidden name=List-Unsubscribe value=One-Click>"
            "<button type=submit>Unsubscribe</button></form>",
        )
    try:
        async with session_scope() as session:
            await notification.unsubscribe(session, token)
    except notification.InvalidUnsubscribeToken:  # pragma: no cover - checked above
        return _page("Invalid link", "<p>This unsubscribe link is not valid.</p>", 400)
    return _page("You are unsubscribed", "<p>You will no longer receive non-essential emails from Odim. "
                 "Receipts, refunds, payouts and disputes are still sent.</p>")
