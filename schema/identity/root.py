"""Root fields of identity: the logged-in account (``me``) and the account mutations (sign-up, sign-in,
sessions, passwords, email verification, MFA, guest links)."""

from __future__ import annotations

import strawberry

from resolvers import identity as user_resolvers
from schema.identity.user import (
    AccountActionPayload,
    AuthTokens,
    ChangePasswordInput,
    ChangePasswordPayload,
    ClaimGuestPurchasesInput,
    ClaimGuestPurchasesPayload,
    ConfirmMfaEnrolmentInput,
    ConfirmMfaEnrolmentPayload,
    LoginInput,
    LoginPayload,
    LogoutInput,
    LogoutPayload,
    RefreshTokenInput,
    RefreshTokenPayload,
    RegisterInput,
    RegisterPayload,
    RequestEmailVerificationInput,
    RequestGuestAccessLinksInput,
    RequestPasswordResetInput,
    ResetPasswordInput,
    StartMfaEnrolmentInput,
    StartMfaEnrolmentPayload,
    User,
    VerifyEmailInput,
    VerifyEmailPayload,
    account_errors,
)


@strawberry.type
class Query:
    @strawberry.field(description="The logged-in account, or null.")
    async def me(self, info: strawberry.Info) -> User | None:
        user = await user_resolvers.me(info.context)
        return User.of(user) if user else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a customer account; returns a signed-in token pair and emails a link "
                         "to confirm the address. Rate-limited (RATE_LIMITED).")
    async def register(self, info: strawberry.Info, input: RegisterInput) -> RegisterPayload:
        r = await user_resolvers.register(
            info.context, email=input.email, password=input.password, full_name=input.full_name, phone=input.phone
        )
        return RegisterPayload(token=r.tokens.access_token if r.tokens else None, tokens=AuthTokens.of(r.tokens),
                               user=User.of(r.user) if r.user else None, errors=account_errors(r.errors))

    @strawberry.mutation(description="Sign in with email and password (plus `totpCode` once MFA is on). Returns a "
                         "15-minute access token and a single-use refresh token. Rate-limited per email (RATE_LIMITED).")
    async def login(self, info: strawberry.Info, input: LoginInput) -> LoginPayload:
        r = await user_resolvers.login(info.context, email=input.email, password=input.password,
                                       totp_code=input.totp_code)
        return LoginPayload(token=r.tokens.access_token if r.tokens else None, tokens=AuthTokens.of(r.tokens),
                            user=User.of(r.user) if r.user else None, mfa_enrolment_required=r.mfa_enrolment_required,
                            errors=account_errors(r.errors))

    @strawberry.mutation(description="Trade a refresh token for a new token pair (rotation: the old refresh token is "
                         "spent; presenting it again signs the whole sign-in out: REFRESH_TOKEN_REUSED).")
    async def refresh_token(self, info: strawberry.Info, input: RefreshTokenInput) -> RefreshTokenPayload:
        r = await user_resolvers.refresh(info.context, refresh_token=input.refresh_token)
        return RefreshTokenPayload(tokens=AuthTokens.of(r.tokens), errors=account_errors(r.errors))

    @strawberry.mutation(description="Sign out this device (or every device): its access and refresh tokens stop "
                         "working at once.")
    async def logout(self, info: strawberry.Info, input: LogoutInput | None = None) -> LogoutPayload:
        r = await user_resolvers.logout(info.context, everywhere=bool(input and input.everywhere))
        return LogoutPayload(sessions_ended=r.count, errors=account_errors(r.errors))

    @strawberry.mutation(description="Change your password: every sign-in is revoked and you get a new one.")
    async def change_password(self, info: strawberry.Info, input: ChangePasswordInput) -> ChangePasswordPayload:
        r = await user_resolvers.change_password(info.context, current_password=input.current_password,
                                                 new_password=input.new_password)
        return ChangePasswordPayload(tokens=AuthTokens.of(r.tokens), errors=account_errors(r.errors))

    @strawberry.mutation(description="Email a single-use password-reset link (1 hour) if an account has this email. "
                         "The answer is the same whether or not one does. Rate-limited.")
    async def request_password_reset(
        self, info: strawberry.Info, input: RequestPasswordResetInput
    ) -> AccountActionPayload:
        r = await user_resolvers.request_password_reset(info.context, email=input.email)
        return AccountActionPayload(ok=r.ok, errors=account_errors(r.errors))

    @strawberry.mutation(description="Set a new password with the emailed link's token; signs out every device.")
    async def reset_password(self, info: strawberry.Info, input: ResetPasswordInput) -> AccountActionPayload:
        r = await user_resolvers.reset_password(info.context, token=input.token, new_password=input.new_password)
        return AccountActionPayload(ok=r.ok, errors=account_errors(r.errors))

    @strawberry.mutation(description="Confirm your email address with the emailed link's token.")
    async def verify_email(self, info: strawberry.Info, input: VerifyEmailInput) -> VerifyEmailPayload:
        user, errors = await user_resolvers.verify_email(info.context, token=input.token)
        return VerifyEmailPayload(user=User.of(user) if user else None, errors=account_errors(errors))

    @strawberry.mutation(description="Email a new verification link to this address if an account has it and it is "
                         "not verified yet. The answer is the same either way. Rate-limited.")
    async def request_email_verification(
        self, info: strawberry.Info, input: RequestEmailVerificationInput
    ) -> AccountActionPayload:
        r = await user_resolvers.request_email_verification(info.context, email=input.email)
        return AccountActionPayload(ok=r.ok, errors=account_errors(r.errors))

    @strawberry.mutation(description="Start turning on two-factor authentication (TOTP, RFC 6238): returns the secret "
                         "for an authenticator app. Admins must do this before any admin action.")
    async def start_mfa_enrolment(
        self, info: strawberry.Info, input: StartMfaEnrolmentInput | None = None
    ) -> StartMfaEnrolmentPayload:
        enrolment, errors = await user_resolvers.start_mfa_enrolment(
            info.context, label=input.account_label if input else None)
        return StartMfaEnrolmentPayload(secret=enrolment.secret if enrolment else None,
                                        otpauth_uri=enrolment.otpauth_uri if enrolment else None,
                                        errors=account_errors(errors))

    @strawberry.mutation(description="Finish the MFA enrolment with a first code: MFA is on, every other sign-in is "
                         "signed out, and you get a new sign-in with MFA.")
    async def confirm_mfa_enrolment(
        self, info: strawberry.Info, input: ConfirmMfaEnrolmentInput
    ) -> ConfirmMfaEnrolmentPayload:
        r = await user_resolvers.confirm_mfa_enrolment(info.context, code=input.code)
        return ConfirmMfaEnrolmentPayload(tokens=AuthTokens.of(r.tokens), errors=account_errors(r.errors))

    @strawberry.mutation(description="Guests: email the signed, expiring links to every purchase made with this email "
                         "address. The answer is the same whether or not there are any. Rate-limited.")
    async def request_guest_access_links(
        self, info: strawberry.Info, input: RequestGuestAccessLinksInput
    ) -> AccountActionPayload:
        r = await user_resolvers.request_guest_access_links(info.context, email=input.email)
        return AccountActionPayload(ok=r.ok, errors=account_errors(r.errors))

    @strawberry.mutation(description="Move every guest purchase made with your (verified) email address into your "
                         "account. EMAIL_NOT_VERIFIED until you confirm the address.")
    async def claim_guest_purchases(
        self, info: strawberry.Info, input: ClaimGuestPurchasesInput | None = None
    ) -> ClaimGuestPurchasesPayload:
        r = await user_resolvers.claim_guest_purchases(info.context, references=input.references if input else None)
        return ClaimGuestPurchasesPayload(claimed_references=r.items, errors=account_errors(r.errors))
