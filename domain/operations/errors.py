"""Error codes of the operations context: one StrEnum, the single source of the codes its typed errors
carry (the GraphQL error-code enums are generated from these; schema/shared/common.py ``error_code_enum``)."""

from __future__ import annotations

from enum import StrEnum


class OperationsErrorCode(StrEnum):
    """Codes of privacy, reports and exports."""

    ACCOUNT_DELETED = "ACCOUNT_DELETED"
    INVALID_PERIOD = "INVALID_PERIOD"
    NOT_A_CUSTOMER = "NOT_A_CUSTOMER"
    OPEN_ORDERS = "OPEN_ORDERS"
