"""Accounts and identity: registration, password hashing (argon2id), sign-in sessions with 15-minute JWT
access tokens and rotating refresh tokens (reuse revokes the family), password reset and email
verification by single-use emailed links, and TOTP MFA (RFC 6238, pyotp) that admins must use."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import phonenumbers
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.identity.errors import IdentityErrorCode
from domain.messaging import notification
from domain.shared import audit
from domain.shared.errors import CommonErrorCode, DomainError
from models import AccountToken, AuthSession, RefreshToken, User
from models.identity import email_matches
from settings import get_settings

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 second recommended profile)

MIN_PASSWORD_LENGTH = 10
JWT_ALGORITHM = "HS256"


class InvalidEmail(DomainError):
    code = IdentityErrorCode.INVALID_EMAIL
    field = "email"


class InvalidPhone(DomainError):
    code = IdentityErrorCode.INVALID_PHONE
    field = "phone"


class WeakPassword(DomainError):
    code = IdentityErrorCode.WEAK_PASSWORD
    field = "password"


class EmailTaken(DomainError):
    code = IdentityErrorCode.EMAIL_TAKEN
    field = "email"


class InvalidCredentials(DomainError):
    code = CommonErrorCode.INVALID_CREDENTIALS
    field = None


class InvalidName(DomainError):
    code = IdentityErrorCode.INVALID_NAME
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


async def find_by_email(session: AsyncSession, email: str) -> User | None:
    """The account whose email is ``email`` (case-insensitive), or None."""
    return await session.scalar(select(User).where(email_matches(email)))


async def register(
    session: AsyncSession, *, email: str, password: str, full_name: str, phone: str | None, role: str = "customer"
) -> User:
    """Create an account and email it a verification link. Raises ``InvalidEmail``, ``InvalidPhone``,
    ``WeakPassword`` (fewer than 10 or more than 1,024 characters), ``InvalidName`` or ``EmailTaken``;
    on any error nothing is written."""
    email_n = normalise_email(email)
    name_n = normalise_name(full_name)
    phone_n = normalise_phone(phone) if phone else None
    _check_password(password)
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
    await send_email_verification(session, user)
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
    """A valid access token's claims: ``sid`` is the sign-in session (refresh-token family) it belongs
    to, ``mfa`` whether that sign-in presented a TOTP code."""

    user_id: int
    role: str
    session_id: int
    mfa: bool
    expires_at: datetime


class InvalidToken(DomainError):
    code = CommonErrorCode.UNAUTHENTICATED
    field = None


class InvalidRefreshToken(DomainError):
    code = IdentityErrorCode.INVALID_REFRESH_TOKEN
    field = "refreshToken"


class RefreshTokenReused(DomainError):
    """A refresh token was presented a second time: someone holds a copy. The whole family is revoked
    (OAuth 2.0 Security BCP, RFC 9700 section 4.14.2)."""

    code = IdentityErrorCode.REFRESH_TOKEN_REUSED
    field = "refreshToken"


class InvalidLinkToken(DomainError):
    code = CommonErrorCode.INVALID_TOKEN
    field = "token"


class MfaRequired(DomainError):
    code = IdentityErrorCode.MFA_REQUIRED
    field = "totpCode"


class InvalidMfaCode(DomainError):
    code = IdentityErrorCode.INVALID_MFA_CODE
    field = "code"


class MfaAlreadyEnabled(DomainError):
    code = IdentityErrorCode.MFA_ALREADY_ENABLED
    field = None


class MfaNotStarted(DomainError):
    code = IdentityErrorCode.MFA_NOT_STARTED
    field = None


def issue_token(user: User, *, session_id: int, mfa: bool) -> str:
    """HS256 JWT access token: ``sub`` (user id), ``role``, ``sid`` (session id), ``mfa`` (bool), ``iat``,
    ``exp`` (settings.jwt_ttl_seconds, 15 minutes by default)."""
    settings = get_settings()
    now = datetime.now(UTC)
    claims = {
        "sub": str(user.id),
        "role": user.role,
        "sid": session_id,
        "mfa": mfa,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=settings.jwt_ttl_seconds)).timestamp()),
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=JWT_ALGORITHM)


def decode_token(token: str) -> TokenClaims:
    """Claims of a valid access token. Raises ``InvalidToken`` (saying "expired" or "invalid") otherwise.
    Whether its session was revoked since is checked against the database by the caller."""
    try:
        data = jwt.decode(
            token,
            get_settings().jwt_secret.get_secret_value(),
            algorithms=[JWT_ALGORITHM],
            options={"require": ["sub", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("Access token has expired; get a new one with refreshToken, or log in again") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("Access token is invalid; log in again") from exc
    if not isinstance(data.get("sid"), int):  # signed by us but not an access token of a sign-in
        raise InvalidToken("Access token is invalid; log in again")
    return TokenClaims(
        user_id=int(data["sub"]), role=str(data.get("role", "customer")), session_id=int(data["sid"]),
        mfa=bool(data.get("mfa", False)), expires_at=datetime.fromtimestamp(data["exp"], UTC),
    )


# --- sessions: refresh-token families -------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    """What a sign-in or a refresh returns: a 15-minute access token and its single-use refresh token."""

    access_token: str
    refresh_token: str
    access_expires_at: datetime
    session_id: int


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_pair(user: User, sess: AuthSession) -> tuple[TokenPair, RefreshToken]:
    refresh = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=get_settings().jwt_ttl_seconds)
    pair = TokenPair(issue_token(user, session_id=sess.id, mfa=sess.mfa), refresh, expires, sess.id)
    return pair, RefreshToken(session_id=sess.id, token_hash=_digest(refresh))


async def open_session(session: AsyncSession, user: User, *, mfa: bool = False, user_agent: str | None = None) -> TokenPair:
    """Start a sign-in for ``user``: a new session (refresh-token family, lasting
    settings.refresh_token_ttl_seconds) and its first token pair."""
    sess = AuthSession(
        user_id=user.id, mfa=mfa, user_agent=(user_agent or "")[:200] or None,
        expires_at=datetime.now(UTC) + timedelta(seconds=get_settings().refresh_token_ttl_seconds),
    )
    session.add(sess)
    await session.flush()
    pair, row = _new_pair(user, sess)
    session.add(row)
    await session.flush()
    return pair


async def refresh_session(session: AsyncSession, refresh_token: str) -> tuple[User, TokenPair]:
    """Rotate: the presented refresh token is spent and a new pair is returned. Raises
    ``InvalidRefreshToken`` (unknown, or its session signed out or expired) or ``RefreshTokenReused``
    (already spent: the session is revoked and COMMITTED before raising, so every token of the family,
    access tokens included, stops working)."""
    row = (await session.execute(
        select(RefreshToken, AuthSession).join(AuthSession, AuthSession.id == RefreshToken.session_id)
        .where(RefreshToken.token_hash == _digest(refresh_token.strip())).with_for_update()
    )).first()
    if row is None:
        raise InvalidRefreshToken("Refresh token is not valid; log in again")
    token, sess = row
    now = datetime.now(UTC)
    if sess.revoked_at is not None or sess.expires_at <= now:
        raise InvalidRefreshToken("This sign-in has ended; log in again")
    if token.used_at is not None:
        sess.revoked_at, sess.revoked_reason = now, "refresh_token_reused"
        await audit.record(session, action="auth.refresh_token.reused", outcome="denied", subject_type="AuthSession",
                           subject_id=sess.id, actor_id=sess.user_id)
        await session.commit()
        raise RefreshTokenReused("This refresh token was already used: the sign-in is revoked; log in again")
    user = await session.get(User, sess.user_id)
    if user is None:
        raise InvalidRefreshToken("This account no longer exists")
    token.used_at = now
    sess.last_used_at = now
    pair, new_row = _new_pair(user, sess)
    session.add(new_row)
    await session.flush()
    return user, pair


async def revoke_session(session: AsyncSession, user_id: int, session_id: int, reason: str = "logout") -> bool:
    """End one sign-in of ``user_id`` (its refresh and access tokens stop working). True if it was live."""
    result = await session.execute(
        update(AuthSession).where(AuthSession.id == session_id, AuthSession.user_id == user_id,
                                  AuthSession.revoked_at.is_(None))
        .values(revoked_at=func.now(), revoked_reason=reason)
    )
    return result.rowcount > 0


async def revoke_all_sessions(session: AsyncSession, user_id: int, reason: str) -> int:
    """End every live sign-in of ``user_id``; returns how many."""
    result = await session.execute(
        update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=func.now(), revoked_reason=reason)
    )
    return result.rowcount


async def load_viewer(session: AsyncSession, claims: TokenClaims) -> User:
    """The account behind an access token, in one statement. Raises ``InvalidToken`` when the account
    is gone or the token's session was signed out, revoked or has expired."""
    row = (await session.execute(
        select(User, AuthSession.revoked_at, AuthSession.expires_at)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(User.id == claims.user_id, AuthSession.id == claims.session_id)
    )).first()
    if row is None:
        raise InvalidToken("This sign-in no longer exists; log in again")
    user, revoked_at, expires_at = row
    if revoked_at is not None:
        raise InvalidToken("This sign-in was signed out or revoked; log in again")
    if expires_at <= datetime.now(UTC):
        raise InvalidToken("This sign-in has expired; log in again")
    return user


# --- login, MFA ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    user: User
    tokens: TokenPair
    mfa_enrolment_required: bool


async def login(
    session: AsyncSession, *, email: str, password: str, totp_code: str | None = None, user_agent: str | None = None,
) -> LoginResult:
    """Password sign-in, plus a TOTP code for accounts with MFA. Admins without MFA get a session that can
    only enrol it (``mfa_enrolment_required``; every admin action is refused until then). Raises
    ``InvalidCredentials``, ``MfaRequired`` (no code given) or ``InvalidMfaCode``; each outcome is audited
    (failures committed even though the caller's transaction rolls back)."""
    try:
        user = await authenticate(session, email=email, password=password)
    except InvalidCredentials:
        await audit.record_detached(action="auth.login.failed", outcome="failed", details={"reason": "credentials"})
        raise
    mfa = False
    if user.mfa_enabled_at is not None:
        if not totp_code:
            raise MfaRequired("Enter the 6-digit code from your authenticator app")
        if not await _accept_totp(session, user, totp_code):
            await audit.record_detached(action="auth.mfa.failed", outcome="failed", actor_id=user.id,
                                        actor_role=user.role, subject_type="User", subject_id=user.id)
            raise InvalidMfaCode("The authenticator code is wrong or was already used")
        mfa = True
    tokens = await open_session(session, user, mfa=mfa, user_agent=user_agent)
    await audit.record(session, action="auth.login.succeeded", actor_id=user.id, actor_role=user.role,
                       subject_type="User", subject_id=user.id, details={"mfa": mfa, "session_id": tokens.session_id})
    return LoginResult(user, tokens, mfa_enrolment_required=user.role == "admin" and not mfa)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, issuer=get_settings().mfa_issuer)


async def _accept_totp(session: AsyncSession, user: User, code: str) -> bool:
    """True once per matching code: the code must match a step within settings.mfa_valid_window of now
    and be later than the last accepted step (RFC 6238 section 5.2: no second use). Locks the user row."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6) or not user.mfa_secret:
        return False
    await session.refresh(user, with_for_update=True)
    totp = _totp(user.mfa_secret)
    now_step = int(time.time()) // totp.interval
    window = get_settings().mfa_valid_window
    for step in range(now_step - window, now_step + window + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and step > (user.mfa_last_step or -1):
            user.mfa_last_step = step
            await session.flush()
            return True
    return False


@dataclass(frozen=True)
class MfaEnrolment:
    secret: str
    otpauth_uri: str


class InvalidAccountLabel(DomainError):
    code = CommonErrorCode.INVALID
    field = "accountLabel"


async def start_mfa_enrolment(session: AsyncSession, user: User, *, label: str | None = None) -> MfaEnrolment:
    """A new TOTP secret (base32, 160 bits) for ``user`` and its ``otpauth://`` URI for a QR code, naming
    the account ``label`` (1-64 characters; default its email). Live only after ``confirm_mfa_enrolment``.
    Raises ``MfaAlreadyEnabled`` or ``InvalidAccountLabel``."""
    if user.mfa_enabled_at is not None:
        raise MfaAlreadyEnabled("Two-factor authentication is already on for this account")
    if label is not None:
        label = " ".join(label.split())
        if not 1 <= len(label) <= 64 or ":" in label:
            raise InvalidAccountLabel("The label must be 1 to 64 characters, without ':'")
    secret = pyotp.random_base32(32)
    user.mfa_secret = secret
    await session.flush()
    return MfaEnrolment(secret, _totp(secret).provisioning_uri(name=label or user.email))


async def confirm_mfa_enrolment(session: AsyncSession, user: User, code: str, *, user_agent: str | None = None) -> TokenPair:
    """Turn MFA on with a first valid code and return a new MFA sign-in (other sessions are signed out).
    Raises ``MfaNotStarted``, ``MfaAlreadyEnabled`` or ``InvalidMfaCode``."""
    if user.mfa_enabled_at is not None:
        raise MfaAlreadyEnabled("Two-factor authentication is already on for this account")
    if not user.mfa_secret:
        raise MfaNotStarted("Start the enrolment first (startMfaEnrolment)")
    if not await _accept_totp(session, user, code):
        await audit.record_detached(action="auth.mfa.failed", outcome="failed", actor_id=user.id, actor_role=user.role,
                                    subject_type="User", subject_id=user.id, details={"during": "enrolment"})
        raise InvalidMfaCode("The authenticator code is wrong; check the device's clock and try again")
    user.mfa_enabled_at = datetime.now(UTC)
    await revoke_all_sessions(session, user.id, "revoked")
    await audit.record(session, action="auth.mfa.enrolled", actor_id=user.id, actor_role=user.role,
                       subject_type="User", subject_id=user.id)
    return await open_session(session, user, mfa=True, user_agent=user_agent)


# --- passwords and emailed links -----------------------------------------------------------------


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"Password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise WeakPassword("Password must have at most 1,024 characters")


async def change_password(session: AsyncSession, user: User, *, current: str, new: str, user_agent: str | None = None) -> TokenPair:
    """Set a new password after checking the current one; every sign-in is revoked and a new one opened
    for the caller (keeping its MFA state if it had one). Raises ``InvalidCredentials`` or ``WeakPassword``."""
    if not verify_password(user.password_hash, current):
        raise InvalidCredentials("The current password is incorrect")
    _check_password(new)
    user.password_hash = hash_password(new)
    user.password_changed_at = datetime.now(UTC)
    count = await revoke_all_sessions(session, user.id, "password_changed")
    await audit.record(session, action="auth.password.changed", actor_id=user.id, actor_role=user.role,
                       subject_type="User", subject_id=user.id, details={"sessions_revoked": count})
    return await open_session(session, user, mfa=user.mfa_enabled_at is not None, user_agent=user_agent)


async def _issue_link_token(session: AsyncSession, user: User, purpose: str, ttl_seconds: int) -> str:
    token = secrets.token_urlsafe(32)
    session.add(AccountToken(user_id=user.id, purpose=purpose, token_hash=_digest(token),
                             expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds)))
    await session.flush()
    return token


async def _spend_link_token(session: AsyncSession, token: str, purpose: str) -> User:
    row = await session.scalar(
        select(AccountToken).where(AccountToken.token_hash == _digest(token.strip()), AccountToken.purpose == purpose)
        .with_for_update()
    )
    if row is None or row.used_at is not None or row.expires_at <= datetime.now(UTC):
        raise InvalidLinkToken("This link is invalid, was already used or has expired; ask for a new one")
    row.used_at = datetime.now(UTC)
    user = await session.get(User, row.user_id)
    if user is None:
        raise InvalidLinkToken("This link is invalid, was already used or has expired; ask for a new one")
    return user


async def request_password_reset(session: AsyncSession, email: str) -> None:
    """Email a single-use reset link (settings.password_reset_ttl_seconds) when an account has ``email``;
    silently nothing otherwise (the answer never tells whether an account exists)."""
    user = await find_by_email(session, email)
    if user is None:
        return
    token = await _issue_link_token(session, user, "password_reset", get_settings().password_reset_ttl_seconds)
    await notification.queue_email(
        session, dedupe_key=f"password_reset:{_digest(token)[:32]}", kind="account", to=user.email,
        template="password_reset", user_id=user.id,
        context={"name": user.full_name, "url": f"{get_settings().public_base_url}/reset-password?token={token}",
                 "token": token, "minutes": get_settings().password_reset_ttl_seconds // 60},
    )


async def reset_password(session: AsyncSession, token: str, new_password: str) -> User:
    """Spend a reset link: set ``new_password`` and revoke every sign-in. Raises ``InvalidLinkToken``
    (unknown, used or expired) or ``WeakPassword``; on error nothing changes."""
    _check_password(new_password)
    user = await _spend_link_token(session, token, "password_reset")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = datetime.now(UTC)
    if user.email_verified_at is None:
        user.email_verified_at = datetime.now(UTC)  # the link reached the inbox: the address is theirs
    count = await revoke_all_sessions(session, user.id, "password_reset")
    await audit.record(session, action="auth.password.reset", actor_id=user.id, actor_role=user.role,
                       subject_type="User", subject_id=user.id, details={"sessions_revoked": count})
    return user


async def send_email_verification(session: AsyncSession, user: User) -> bool:
    """Email a single-use verification link (settings.email_verification_ttl_seconds). False when the
    address is already verified (nothing sent)."""
    if user.email_verified_at is not None:
        return False
    token = await _issue_link_token(session, user, "email_verification", get_settings().email_verification_ttl_seconds)
    await notification.queue_email(
        session, dedupe_key=f"email_verification:{_digest(token)[:32]}", kind="account", to=user.email,
        template="verify_email", user_id=user.id,
        context={"name": user.full_name, "url": f"{get_settings().public_base_url}/verify-email?token={token}",
                 "token": token},
    )
    return True


async def verify_email(session: AsyncSession, token: str) -> User:
    """Spend a verification link: the account's email is verified. Raises ``InvalidLinkToken``."""
    user = await _spend_link_token(session, token, "email_verification")
    if user.email_verified_at is None:
        user.email_verified_at = datetime.now(UTC)
    return user
