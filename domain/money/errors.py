"""Error codes of the money context: one StrEnum, the single source of the codes its typed errors
carry (the GraphQL error-code enums are generated from these; schema/shared/common.py ``error_code_enum``)."""

from __future__ import annotations

from enum import StrEnum


class MoneyErrorCode(StrEnum):
    """Codes of the ledger, escrow, refunds, payouts and affiliates."""

    BELOW_PAYOUT_MINIMUM = "BELOW_PAYOUT_MINIMUM"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    DESTINATION_FAILING = "DESTINATION_FAILING"
    DISPUTE_OPEN = "DISPUTE_OPEN"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    INVALID_ACCOUNT_NUMBER = "INVALID_ACCOUNT_NUMBER"
    INVALID_BANK_CODE = "INVALID_BANK_CODE"
    INVALID_COUNTRY = "INVALID_COUNTRY"
    INVALID_STATUS = "INVALID_STATUS"
    MOBILE_MONEY_UNAVAILABLE = "MOBILE_MONEY_UNAVAILABLE"
    NOTHING_TO_RELEASE = "NOTHING_TO_RELEASE"
    NOT_REFUNDABLE = "NOT_REFUNDABLE"
    NO_PAYOUT_DESTINATION = "NO_PAYOUT_DESTINATION"
    REFUND_EXCEEDS_CAPTURED = "REFUND_EXCEEDS_CAPTURED"
    UNBALANCED = "UNBALANCED"
    UNKNOWN_OPERATOR = "UNKNOWN_OPERATOR"
    UNSUPPORTED_CURRENCY = "UNSUPPORTED_CURRENCY"
