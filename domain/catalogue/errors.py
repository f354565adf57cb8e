"""Error codes of the catalogue context: one StrEnum, the single source of the codes its typed errors
carry (the GraphQL error-code enums are generated from these; schema/shared/common.py ``error_code_enum``)."""

from __future__ import annotations

from enum import StrEnum


class CatalogueErrorCode(StrEnum):
    """Codes of services, tiers, prices and affiliate codes on offer."""

    CURRENCY_NOT_OFFERED = "CURRENCY_NOT_OFFERED"
    INVALID_AFFILIATE_CODE = "INVALID_AFFILIATE_CODE"
    TIER_NOT_FOUND = "TIER_NOT_FOUND"
    TIER_REQUIRED = "TIER_REQUIRED"
