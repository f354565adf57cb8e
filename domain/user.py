"""Accounts: registration, login, password hashing (argon2id) and JWT access tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import phonenumbers
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError
from models import User
from settings import get_settings

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 second recommended profile)

MIN_PASSWORD_LENGTH = 10
JWT_ALGORITHM = "HS256"


class InvalidEmail(DomainError):
    code = "INVALID_EMAIL"
    field = "email"


class InvalidPhone(DomainError):
    code = "INVALID_PHONE"
    field = "phone"


class WeakPassword(DomainError):
    code = "WEAK_PASSWORD"
    field = "password"


class EmailTaken(DomainError):
    code = "EMAIL_TAKEN"
    field = "email"


class InvalidCredentials(DomainError):
    code = "INVALID_CREDENTIALS"
    field = None


class InvalidName(DomainError):
    code = "INVALID_NAME"
    field = "fullName"


def hash_password(plain: str) -> str:
    """Argon2id hash (PHC string) of ``plain``."""
    return _hasher.hash(plain)


def verify_password(password_hash: str, plain: str) -> bool:
    """True when ``plain`` matches ``password_hash``; never raises on a mismatch."""
    try:
        return _hasher.verify(password_hash, plain)
    except (VerifyMismatchError, InvalidHashError):
        return False


def normalise_email(email: str) -> str:
    """Syntax-checked, normalised email (no DNS lookup). Raises ``InvalidEmail``."""
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc


def normalise_phone(phone: str, default_region: str | None = None) -> str:
    """E.164 form of ``phone`` (``+2376...``); a number without ``+`` needs ``default_region``.
    Raises ``InvalidPhone`` when libphonenumber says the number is not valid."""
    try:
        parsed = phonenumbers.parse(phone.strip(), default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(
            "Not a phone number; use the international form, e.g. +237 6 71 23 45 67"
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone("Not a valid phone number for its country; use the international form, e.g. +237 6 71 23 45 67")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_name(name: str) -> str:
    """Trimmed full name, 1-200 characters. Raises ``InvalidName``."""
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= 200:
        raise InvalidName("Full name must be 1 to 200 characters")
    return cleaned


def email_matches(email: str):
    """SQL clause: ``users`` row whose email is ``email`` (case-insensitive, exact match)."""
    return func.lower(User.email) == email.strip().lower()


async def find_by_email(session: AsyncSession, email: str) -> User | None:
    """The account whose email is ``email`` (case-insensitive), or None."""
    return await session.scalar(select(User).where(email_matches(email)))


async def register(
    session: AsyncSession, *, email: str, password: str, full_name: str, phone: str | None, role: str = "customer"
) -> User:
    """Create an account. Raises ``InvalidEmail``, ``InvalidPhone``, ``WeakPassword`` (fewer than
    10 characters), ``InvalidName`` or ``EmailTaken``; on any error nothing is written."""
    email_n = normalise_email(email)
    name_n = normalise_name(full_name)
    phone_n = normalise_phone(phone) if phone else None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"Password must have at least {MIN_PASSWORD_LENGTH} characters")
    existing = await session.scalar(select(User.id).where(email_matches(email_n)))
    if existing is not None:
        raise EmailTaken("An account with this email already exists")
    user = User(email=email_n, password_hash=hash_password(password), full_name=name_n, phone=phone_n, role=role)
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError as exc:  # concurrent registration with the same email
        raise EmailTaken("An account with this email already exists") from exc
    return user


async def authenticate(session: AsyncSession, *, email: str, password: str) -> User:
    """The account for ``email`` when ``password`` matches. Raises ``InvalidCredentials`` (same
    error for unknown email and wrong password, so accounts cannot be enumerated)."""
    user = await find_by_email(session, email)
    if user is None:
        _hasher.hash(password)  # spend the same time as a real check
        raise InvalidCredentials("Email or password is incorrect")
    if not verify_password(user.password_hash, password):
        raise InvalidCredentials("Email or password is incorrect")
    return user


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    role: str
    expires_at: datetime


class InvalidToken(DomainError):
    code = "UNAUTHENTICATED"
    field = None


def issue_token(user: User) -> str:
    """HS256 JWT with ``sub`` (user id), ``role``, ``iat`` and ``exp`` (settings.jwt_ttl_seconds)."""
    settings = get_settings()
    now = datetime.now(UTC)
    claims = {
        "sub": str(user.id),
        "role": user.role,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=settings.jwt_ttl_seconds)).timestamp()),
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=JWT_ALGORITHM)


def decode_token(token: str) -> TokenClaims:
    """Claims of a valid token. Raises ``InvalidToken`` ("expired" or "invalid") otherwise."""
    try:
        data = jwt.decode(
            token,
            get_settings().jwt_secret.get_secret_value(),
            algorithms=[JWT_ALGORITHM],
            options={"require": ["sub", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("Access token has expired; log in again") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("Access token is invalid") from exc
    return TokenClaims(
        user_id=int(data["sub"]), role=str(data.get("role", "customer")),
        expires_at=datetime.fromtimestamp(data["exp"], UTC),
    )
