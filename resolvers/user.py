"""Account resolvers: register, login, me."""

from __future__ import annotations

from dataclasses import dataclass

from domain import user as user_domain
from domain.errors import DomainError
from models import User
from models.db import session_scope
from resolvers.context import Context
from resolvers.errors import PayloadError, to_payload_error


@dataclass
class AuthResult:
    token: str | None
    user: User | None
    errors: list[PayloadError]


async def register(ctx: Context, *, email: str, password: str, full_name: str, phone: str | None) -> AuthResult:
    """New customer account and its access token; typed errors for bad input or a taken email."""
    try:
        async with session_scope() as session:
            user = await user_domain.register(
                session, email=email, password=password, full_name=full_name, phone=phone or None
            )
    except DomainError as exc:
        return AuthResult(None, None, [to_payload_error(exc)])
    return AuthResult(user_domain.issue_token(user), user, [])


async def login(ctx: Context, *, email: str, password: str) -> AuthResult:
    try:
        async with session_scope() as session:
            user = await user_domain.authenticate(session, email=email, password=password)
    except DomainError as exc:
        return AuthResult(None, None, [to_payload_error(exc)])
    return AuthResult(user_domain.issue_token(user), user, [])


async def me(ctx: Context) -> User | None:
    return await ctx.viewer()


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
