"""Accounts in GraphQL: the User node, sign-up, sign-in, sessions, passwords, email verification, MFA
and guest links (inputs, payloads, AccountError codes; the root fields: schema/identity/root.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.identity.errors import IdentityErrorCode
from domain.identity.user import TokenPair
from domain.orders.errors import OrdersErrorCode
from domain.shared.errors import CommonErrorCode
from models import User as UserModel
from resolvers import identity as user_resolvers
from schema.shared.common import coded_errors, error_code_enum


@strawberry.enum
class UserRole(Enum):
    CUSTOMER = "customer"
    PROVIDER = "provider"
    ADMIN = "admin"


@strawberry.type
class User(relay.Node):
    id: relay.NodeID[int]
    email: str
    full_name: str
    phone: str | None
    role: UserRole
    email_verified: bool = strawberry.field(description="The owner confirmed the address by an emailed link.")
    mfa_enabled: bool = strawberry.field(description="Sign-in needs a TOTP code (required for admins).")

    @classmethod
    def of(cls, user: UserModel) -> "User":
        return cls(id=user.id, email=user.email, full_name=user.full_name, phone=user.phone, role=UserRole(user.role),
                   email_verified=user.email_verified_at is not None, mfa_enabled=user.mfa_enabled_at is not None)

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        users = await user_resolvers.user_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(u) if u else None for u in users]


AccountErrorCode = error_code_enum("AccountErrorCode", [
    IdentityErrorCode.INVALID_EMAIL, IdentityErrorCode.INVALID_PHONE, IdentityErrorCode.INVALID_NAME,
    IdentityErrorCode.WEAK_PASSWORD, IdentityErrorCode.EMAIL_TAKEN, CommonErrorCode.INVALID_CREDENTIALS,
    IdentityErrorCode.MFA_REQUIRED, IdentityErrorCode.INVALID_MFA_CODE, IdentityErrorCode.MFA_ALREADY_ENABLED,
    IdentityErrorCode.MFA_NOT_STARTED, IdentityErrorCode.INVALID_REFRESH_TOKEN,
    IdentityErrorCode.REFRESH_TOKEN_REUSED, CommonErrorCode.INVALID_TOKEN, OrdersErrorCode.EMAIL_NOT_VERIFIED,
    CommonErrorCode.RATE_LIMITED, CommonErrorCode.INVALID,
])


@strawberry.type
class AccountError:
    field: str | None
    code: AccountErrorCode
    message: str


@strawberry.input
class RegisterInput:
    email: str
    password: str = strawberry.field(description="At least 10 characters.")
    full_name: str
    phone: str | None = strawberry.field(default=None, description="International form, e.g. +237671234567.")


@strawberry.input
class LoginInput:
    email: str
    password: str
    totp_code: str | None = strawberry.field(
        default=None, description="The 6-digit code of your authenticator app: required once MFA is on (admins).")


@strawberry.type
class AuthTokens:
    """A sign-in's tokens. The access token lasts 15 minutes: send it as `Authorization: Bearer <token>`
    (HTTP) or `{"token": ...}` in `connection_init` (WebSocket). Before it expires, trade the refresh token
    for a new pair with `refreshToken`; each refresh token works ONCE (using one twice signs the whole
    sign-in out, since it means someone copied it)."""

    access_token: str
    access_token_expires_at: datetime
    refresh_token: str

    @classmethod
    def of(cls, pair: TokenPair | None) -> "AuthTokens | None":
        if pair is None:
            return None
        return cls(access_token=pair.access_token, access_token_expires_at=pair.access_expires_at,
                   refresh_token=pair.refresh_token)


@strawberry.type
class RegisterPayload:
    token: str | None = strawberry.field(description="The access token (also in `tokens`).")
    tokens: AuthTokens | None
    user: User | None
    errors: list[AccountError]


@strawberry.type
class LoginPayload:
    token: str | None = strawberry.field(description="The access token (also in `tokens`).")
    tokens: AuthTokens | None
    user: User | None
    mfa_enrolment_required: bool = strawberry.field(
        description="An admin without MFA: this sign-in can only enrol it (startMfaEnrolment, confirmMfaEnrolment).")
    errors: list[AccountError]


@strawberry.input
class RefreshTokenInput:
    refresh_token: str


@strawberry.type
class RefreshTokenPayload:
    tokens: AuthTokens | None
    errors: list[AccountError]


@strawberry.input
class LogoutInput:
    everywhere: bool = strawberry.field(default=False, description="Sign out every device, not just this one.")


@strawberry.type
class LogoutPayload:
    sessions_ended: int
    errors: list[AccountError]


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str = strawberry.field(description="At least 10 characters.")


@strawberry.type
class ChangePasswordPayload:
    tokens: AuthTokens | None = strawberry.field(description="A new sign-in: every other one was signed out.")
    errors: list[AccountError]


@strawberry.input
class RequestPasswordResetInput:
    email: str


@strawberry.input
class ResetPasswordInput:
    token: str = strawberry.field(description="From the emailed link (works once, for 1 hour).")
    new_password: str


@strawberry.input
class VerifyEmailInput:
    token: str = strawberry.field(description="From the emailed link (works once).")


@strawberry.type
class VerifyEmailPayload:
    user: User | None
    errors: list[AccountError]


@strawberry.type
class AccountActionPayload:
    ok: bool
    errors: list[AccountError]


@strawberry.input
class RequestEmailVerificationInput:
    email: str


@strawberry.input
class StartMfaEnrolmentInput:
    account_label: str | None = strawberry.field(
        default=None, description="The account's name in the authenticator app (1-64 characters); default: your email.")


@strawberry.input
class ClaimGuestPurchasesInput:
    references: list[str] | None = strawberry.field(
        default=None, description="Only these references (each must be a guest purchase with your email); default: all.")


@strawberry.type
class StartMfaEnrolmentPayload:
    secret: str | None = strawberry.field(description="Base32 TOTP secret, for typing into an authenticator app.")
    otpauth_uri: str | None = strawberry.field(description="`otpauth://totp/...` URI: show it as a QR code.")
    errors: list[AccountError]


@strawberry.input
class ConfirmMfaEnrolmentInput:
    code: str = strawberry.field(description="The current 6-digit code of the authenticator app.")


@strawberry.type
class ConfirmMfaEnrolmentPayload:
    tokens: AuthTokens | None = strawberry.field(description="A new sign-in WITH MFA; every other one was signed out.")
    errors: list[AccountError]


@strawberry.input
class RequestGuestAccessLinksInput:
    email: str


@strawberry.type
class ClaimGuestPurchasesPayload:
    claimed_references: list[str]
    errors: list[AccountError]


def account_errors(errors) -> list[AccountError]:
    return coded_errors(AccountErrorCode, AccountError, errors)
