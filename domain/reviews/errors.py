"""Error codes of the reviews context: one StrEnum, the single source of the codes its typed errors
carry (the GraphQL error-code enums are generated from these; schema/shared/common.py ``error_code_enum``)."""

from __future__ import annotations

from enum import StrEnum


class ReviewsErrorCode(StrEnum):
    """Codes of reviews."""

    ALREADY_REVIEWED = "ALREADY_REVIEWED"
    INVALID_RATING = "INVALID_RATING"
    NOT_REVIEWABLE = "NOT_REVIEWABLE"
    REVIEW_WINDOW_CLOSED = "REVIEW_WINDOW_CLOSED"
