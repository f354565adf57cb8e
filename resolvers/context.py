"""Per-request (HTTP) or per-connection (WebSocket) context: who is calling, a lazy DB session
and the request's DataLoaders.

WebSocket contexts live as long as the connection (docs/pitfalls.md): subscriptions never use the
context session or loaders; they open a session per event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.identity.user import InvalidToken, TokenClaims, decode_token, load_viewer
from models import User
from models.db import get_sessionmaker


def unauthenticated(message: str = "Log in to do this") -> GraphQLError:
    return GraphQLError(message, extensions={"code": "UNAUTHENTICATED"})


def forbidden(message: str = "You are not allowed to do this") -> GraphQLError:
    return GraphQLError(message, extensions={"code": "FORBIDDEN"})


def bearer_token(value: str | None) -> str | None:
    """The token in ``Bearer <token>`` (or a bare token)."""
    if not value:
        return None
    value = value.strip()
    return value[7:].strip() if value.lower().startswith("bearer ") else value


@dataclass
class Context:
    request: Any = None
    response: Any = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    token: str | None = None
    connection_params: dict | None = None
    claims: TokenClaims | None = None
    auth_error: str | None = None
    _session: AsyncSession | None = None
    _user: User | None = None
    _user_loaded: bool = False
    loaders: dict[str, Any] = field(default_factory=dict)

    def authenticate(self, token: str | None) -> None:
        """Decode ``token`` (if any). An invalid or expired token is remembered as ``auth_error``."""
        self.token = token
        self.claims = None
        self.auth_error = None
        self._user_loaded = False
        if token:
            try:
                self.claims = decode_token(token)
            except InvalidToken as exc:
                self.auth_error = exc.message

    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncSession]:
        """The request's read session, one user at a time: GraphQL resolves sibling fields
        concurrently and an AsyncSession allows no concurrent use. Closed by
        ``DbSessionExtension`` when the operation ends. Not re-entrant: never nest."""
        async with self._lock:
            if self._session is None:
                self._session = get_sessionmaker()()
            yield self._session

    async def close(self) -> None:
        """Close the read session (under the same lock: on a WebSocket, operations share this context)."""
        async with self._lock:
            if self._session is not None:
                await self._session.close()
                self._session = None
            self.loaders.clear()

    async def viewer(self, *, allow_without_mfa: bool = False) -> User | None:
        """The calling account, or None for anonymous callers. Raises UNAUTHENTICATED when a token
        was sent but is expired, invalid, names a deleted account, or its sign-in was signed out or
        revoked (checked against the database on every operation: one statement). An admin whose
        sign-in did not present a TOTP code gets FORBIDDEN (code MFA_REQUIRED in the message) for
        everything but the MFA enrolment fields (``allow_without_mfa``)."""
        if self.auth_error:
            raise unauthenticated(self.auth_error)
        if self.claims is None:
            return None
        if not self._user_loaded:
            try:
                async with self.db() as session:
                    self._user = await load_viewer(session, self.claims)
                    # Give the connection back at once: a mutation or subscription that goes on to open
                    # its own session_scope() would otherwise hold two pooled connections, and 25-50 of
                    # them at once exhaust the pool and wait for each other until the pool times out.
                    await session.commit()
            except InvalidToken as exc:
                self.auth_error = exc.message
                raise unauthenticated(exc.message) from None
            self._user_loaded = True
        if self._user.role == "admin" and not self.claims.mfa and not allow_without_mfa:
            raise forbidden("Admins must sign in with two-factor authentication (MFA_REQUIRED): enrol with "
                            "startMfaEnrolment and confirmMfaEnrolment, then log in with totpCode")
        return self._user

    async def require_user(self, *, allow_without_mfa: bool = False) -> User:
        user = await self.viewer(allow_without_mfa=allow_without_mfa)
        if user is None:
            raise unauthenticated()
        return user

    async def require_admin(self) -> User:
        user = await self.require_user()
        if user.role != "admin":
            raise forbidden("Only operators (admins) can do this")
        return user
