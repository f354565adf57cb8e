"""Error codes of the identity context: one StrEnum, the single source of the codes its typed errors
carry (the GraphQL error-code enums are generated from these; schema/shared/common.py ``error_code_enum``)."""

from __future__ import annotations

from enum import StrEnum


class IdentityErrorCode(StrEnum):
    """Codes of accounts, sign-in, sessions and MFA."""

    EMAIL_TAKEN = "EMAIL_TAKEN"
    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_MFA_CODE = "INVALID_MFA_CODE"
    INVALID_NAME = "INVALID_NAME"
    INVALID_PHONE = "INVALID_PHONE"
    INVALID_REFRESH_TOKEN = "INVALID_REFRESH_TOKEN"
    MFA_ALREADY_ENABLED = "MFA_ALREADY_ENABLED"
    MFA_NOT_STARTED = "MFA_NOT_STARTED"
    MFA_REQUIRED = "MFA_REQUIRED"
    REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"
    WEAK_PASSWORD = "WEAK_PASSWORD"
