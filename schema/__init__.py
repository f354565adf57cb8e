"""The GraphQL schema: root types plus extensions (limits, caches, error masking)."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from schema.extensions import DbSessionExtension, MaskUnexpectedErrors
from schema.mutation import Mutation
from schema.query import Query
from schema.subscription import Subscription

schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        # Factories, not instances (FIELD-NOTES.md).
        lambda: QueryDepthLimiter(max_depth=10),
        lambda: MaxTokensLimiter(max_token_count=2000),
        lambda: MaxAliasesLimiter(max_alias_count=30),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        DbSessionExtension,
        MaskUnexpectedErrors,
    ],
)
