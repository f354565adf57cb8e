"""Page sizes of the API's connections and lists (the keyset cursors themselves: domain/shared/pagination.py)."""

from __future__ import annotations

from graphql import GraphQLError

from settings import get_settings


def page_size(first: int | None, default: int = 20) -> int:
    limit = get_settings().max_page_size
    if first is None:
        return default
    if not 1 <= first <= limit:
        raise GraphQLError(f"first must be between 1 and {limit}", extensions={"code": "INVALID_PAGE_SIZE", "field": "first"})
    return first
