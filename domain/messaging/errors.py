"""Error codes of the messaging context: one StrEnum, the single source of the codes its typed errors
carry (the GraphQL error-code enums are generated from these; schema/shared/common.py ``error_code_enum``)."""

from __future__ import annotations

from enum import StrEnum


class MessagingErrorCode(StrEnum):
    """Codes of chat, notifications and emails."""

    EMPTY = "EMPTY"
    TRANSACTIONAL_KIND = "TRANSACTIONAL_KIND"
    UNKNOWN_KIND = "UNKNOWN_KIND"
