"""Account resolvers: register, login (with TOTP for MFA accounts), refresh, logout, passwords,
email verification, MFA enrolment, guest links and claims, me.

Every mutation here returns typed payload errors; the per-account rate limits (resolvers.ratelimit) run
before any work, so a refused call writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.identity import user as user_domain
from domain.orders import guest_access
from domain.shared import audit
from domain.shared.errors import CommonErrorCode, DomainError
from models import User
from models.db import session_scope
from resolvers import ratelimit
from resolvers.context import Context
from resolvers.errors import PayloadError, to_payload_error


@dataclass
class AuthResult:
    """A sign-in's outcome: the token pair (None on error), the account, errors."""

    tokens: user_domain.TokenPair | None
    user: User | None
    errors: list[PayloadError]
    mfa_enrolment_required: bool = False


@dataclass
class Done:
    """Outcome of a mutation that returns no object: ``count`` when it has one, errors."""

    ok: bool
    errors: list[PayloadError] = field(default_factory=list)
    count: int = 0
    items: list[str] = field(default_factory=list)


def _user_agent(ctx: Context) -> str | None:
    request = ctx.request
    headers = getattr(request, "headers", None)
    return headers.get("user-agent") if headers is not None else None


def _limited(bucket: str, seconds: int) -> PayloadError:
    return PayloadError(None, CommonErrorCode.RATE_LIMITED, f"Too many attempts ({bucket}); try again in {seconds} seconds")


async def register(ctx: Context, *, email: str, password: str, full_name: str, phone: str | None) -> AuthResult:
    """New customer account, signed in (token pair); a verification link is emailed. Typed errors for
    bad input, a taken email or too many attempts."""
    if (wait := await ratelimit.limit(ctx, "register", email.strip().lower())) is not None:
        return AuthResult(None, None, [_limited("register", wait)])
    try:
        async with session_scope() as session:
            user = await user_domain.register(
                session, email=email, password=password, full_name=full_name, phone=phone or None
            )
            tokens = await user_domain.open_session(session, user, user_agent=_user_agent(ctx))
    except DomainError as exc:
        return AuthResult(None, None, [to_payload_error(exc)])
    return AuthResult(tokens, user, [])


async def login(ctx: Context, *, email: str, password: str, totp_code: str | None) -> AuthResult:
    """Sign in: password, plus ``totp_code`` for MFA accounts. Rate-limited per email."""
    if (wait := await ratelimit.limit(ctx, "login", email.strip().lower())) is not None:
        return AuthResult(None, None, [_limited("login", wait)])
    try:
        async with session_scope() as session:
            result = await user_domain.login(
                session, email=email, password=password, totp_code=totp_code, user_agent=_user_agent(ctx)
            )
    except DomainError as exc:
        return AuthResult(None, None, [to_payload_error(exc)])
    return AuthResult(result.tokens, result.user, [], result.mfa_enrolment_required)


async def refresh(ctx: Context, *, refresh_token: str) -> AuthResult:
    """Rotate a refresh token into a new pair; a reused one revokes its whole sign-in."""
    try:
        async with session_scope() as session:
            user, tokens = await user_domain.refresh_session(session, refresh_token)
    except DomainError as exc:
        return AuthResult(None, None, [to_payload_error(exc)])
    return AuthResult(tokens, user, [], user.role == "admin" and not user_domain.decode_token(tokens.access_token).mfa)


async def logout(ctx: Context, *, everywhere: bool) -> Done:
    """End the caller's sign-in (``everywhere``: all of the account's sign-ins). Its access and refresh
    tokens stop working at once."""
    user = await ctx.require_user(allow_without_mfa=True)
    assert ctx.claims is not None
    async with session_scope() as session:
        if everywhere:
            count = await user_domain.revoke_all_sessions(session, user.id, "logout_everywhere")
        else:
            count = int(await user_domain.revoke_session(session, user.id, ctx.claims.session_id))
        await audit.record(session, action="auth.logout", actor_id=user.id, actor_role=user.role,
                           subject_type="User", subject_id=user.id, details={"everywhere": everywhere, "sessions": count})
    return Done(True, count=count)


async def change_password(ctx: Context, *, current_password: str, new_password: str) -> AuthResult:
    """New password; every sign-in is revoked and the caller gets a fresh one."""
    viewer = await ctx.require_user(allow_without_mfa=True)
    try:
        async with session_scope() as session:
            user = await session.get(User, viewer.id)
            assert user is not None
            tokens = await user_domain.change_password(
                session, user, current=current_password, new=new_password, user_agent=_user_agent(ctx)
            )
    except DomainError as exc:
        return AuthResult(None, None, [to_payload_error(exc)])
    return AuthResult(tokens, user, [], user.role == "admin" and user.mfa_enabled_at is None)


async def request_password_reset(ctx: Context, *, email: str) -> Done:
    """Email a reset link if an account has ``email``; the answer is the same either way."""
    if (wait := await ratelimit.limit(ctx, "password_reset", email.strip().lower())) is not None:
        return Done(False, [_limited("password_reset", wait)])
    async with session_scope() as session:
        await user_domain.request_password_reset(session, email)
    return Done(True)


async def reset_password(ctx: Context, *, token: str, new_password: str) -> Done:
    """Spend a reset link; every sign-in of the account is revoked (log in with the new password)."""
    if (wait := await ratelimit.limit(ctx, "password_reset", "token:" + token[:16])) is not None:
        return Done(False, [_limited("password_reset", wait)])
    try:
        async with session_scope() as session:
            await user_domain.reset_password(session, token, new_password)
    except DomainError as exc:
        return Done(False, [to_payload_error(exc)])
    return Done(True)


async def verify_email(ctx: Context, *, token: str) -> tuple[User | None, list[PayloadError]]:
    try:
        async with session_scope() as session:
            user = await user_domain.verify_email(session, token)
    except DomainError as exc:
        return None, [to_payload_error(exc)]
    return user, []


async def request_email_verification(ctx: Context, *, email: str) -> Done:
    """Email a new verification link if an unverified account has ``email``; same answer either way."""
    if (wait := await ratelimit.limit(ctx, "password_reset", "verify:" + email.strip().lower())) is not None:
        return Done(False, [_limited("email verification", wait)])
    async with session_scope() as session:
        user = await user_domain.find_by_email(session, email)
        if user is not None and user.deleted_at is None:
            await user_domain.send_email_verification(session, user)
    return Done(True)


async def start_mfa_enrolment(
    ctx: Context, *, label: str | None = None
) -> tuple[user_domain.MfaEnrolment | None, list[PayloadError]]:
    viewer = await ctx.require_user(allow_without_mfa=True)
    try:
        async with session_scope() as session:
            user = await session.get(User, viewer.id)
            assert user is not None
            enrolment = await user_domain.start_mfa_enrolment(session, user, label=label)
    except DomainError as exc:
        return None, [to_payload_error(exc)]
    return enrolment, []


async def confirm_mfa_enrolment(ctx: Context, *, code: str) -> AuthResult:
    viewer = await ctx.require_user(allow_without_mfa=True)
    try:
        async with session_scope() as session:
            user = await session.get(User, viewer.id)
            assert user is not None
            tokens = await user_domain.confirm_mfa_enrolment(session, user, code, user_agent=_user_agent(ctx))
    except DomainError as exc:
        return AuthResult(None, None, [to_payload_error(exc)])
    return AuthResult(tokens, user, [])


async def request_guest_access_links(ctx: Context, *, email: str) -> Done:
    """Email a guest the links to its purchases; the answer never says whether there were any."""
    if (wait := await ratelimit.limit(ctx, "password_reset", "guest:" + email.strip().lower())) is not None:
        return Done(False, [_limited("guest links", wait)])
    try:
        async with session_scope() as session:
            await guest_access.send_guest_access_links(session, email)
    except DomainError as exc:
        return Done(False, [to_payload_error(exc)])
    return Done(True)


async def claim_guest_purchases(ctx: Context, *, references: list[str] | None = None) -> Done:
    viewer = await ctx.require_user()
    try:
        async with session_scope() as session:
            user = await session.get(User, viewer.id)
            assert user is not None
            refs = await guest_access.claim_guest_purchases(session, user, references=references)
    except DomainError as exc:
        return Done(False, [to_payload_error(exc)])
    return Done(True, count=len(refs), items=refs)


async def me(ctx: Context) -> User | None:
    return await ctx.viewer(allow_without_mfa=True)


async def user_nodes(ctx: Context, ids: list[int]) -> list[User | None]:
    """Users by id: each caller sees only itself, admins see everyone."""
    viewer = await ctx.viewer()
    if viewer is None:
        return [None] * len(ids)
    out: list[User | None] = []
    async with ctx.db() as session:
        for ident in ids:
            out.append(await session.get(User, ident) if viewer.role == "admin" or viewer.id == ident else None)
    return out
