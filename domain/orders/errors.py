"""Error codes of the orders context: one StrEnum, the single source of the codes its typed errors
carry (the GraphQL error-code enums are generated from these; schema/shared/common.py ``error_code_enum``)."""

from __future__ import annotations

from enum import StrEnum


class OrdersErrorCode(StrEnum):
    """Codes of purchases, the request state machine, guest access, contracts, disputes and payments."""

    CONTRACT_CHANGED = "CONTRACT_CHANGED"
    CONTRACT_NOT_ACCEPTED = "CONTRACT_NOT_ACCEPTED"
    DISPUTE_ALREADY_OPEN = "DISPUTE_ALREADY_OPEN"
    DISPUTE_NOT_OPEN = "DISPUTE_NOT_OPEN"
    EMAIL_NOT_VERIFIED = "EMAIL_NOT_VERIFIED"
    GATEWAY_UNAVAILABLE = "GATEWAY_UNAVAILABLE"
    INVALID_SORT = "INVALID_SORT"
    NOT_DISPUTABLE = "NOT_DISPUTABLE"
    PAYMENT_GATEWAY_ERROR = "PAYMENT_GATEWAY_ERROR"
    PROVIDER_NOT_ASSIGNABLE = "PROVIDER_NOT_ASSIGNABLE"
