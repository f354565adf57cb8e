"""The GraphQL schema: every context's root types combined, plus extensions (limits, caches, error
masking).

Each bounded context is a package named after it (as in domain/, models/ and resolvers/): shared,
messaging, identity, catalogue, providers, money, reviews, orders, bookings, operations. Each has one
``Query``, one ``Mutation`` and, where it has live fields, one ``Subscription`` (``<context>/root.py``),
root fields written one way: ``@strawberry.field`` / ``@strawberry.mutation`` /
``@strawberry.subscription`` methods. They are combined here, and only here, with ``merge_types``; a
root field that two contexts both define stops the import instead of one silently replacing the other.
The modules at this top level hold no GraphQL types, only the machinery around the schema (extensions,
audit, security, text_guard, observability, http, fanout).
"""

from __future__ import annotations

import warnings

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.tools import merge_types

from schema import bookings, catalogue, identity, messaging, money, operations, orders, providers, reviews, shared
from schema.audit import AuditExtension, audit_admin_mutations
from schema.extensions import DbSessionExtension, MaskUnexpectedErrors
from schema.observability import OperationMetrics
from schema.security import SecurityExtension
from schema.text_guard import RefuseNulCharacters
from settings import get_settings


def _combined(name: str, types: tuple[type, ...]) -> type:
    """One root type with the fields of ``types``; a field defined twice is an error, not a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return merge_types(name, types)


Query = _combined("Query", (
    shared.Query, messaging.Query, identity.Query, catalogue.Query, providers.Query, money.Query, reviews.Query,
    orders.Query, bookings.Query, operations.Query,
))
Mutation = _combined("Mutation", (
    messaging.Mutation, identity.Mutation, providers.Mutation, money.Mutation, reviews.Mutation, orders.Mutation,
    bookings.Mutation, operations.Mutation,
))
Subscription = _combined("Subscription", (messaging.Subscription, orders.Subscription, bookings.Subscription))

# The depth and alias limiters build a new rule class per instance, and ValidationCache keys on the
# rule classes: build them ONCE, then hand the same classes to a fresh extension per operation, or
# the cache never hits (measured: 0 hits in 5 identical operations; about 3 ms of validation each).
# Limits from settings (max_query_depth, max_query_aliases, max_query_tokens), read at import.
_settings = get_settings()
LIMIT_RULES = [
    *QueryDepthLimiter(max_depth=_settings.max_query_depth).validation_rules,
    *MaxAliasesLimiter(max_alias_count=_settings.max_query_aliases).validation_rules,
]
MAX_TOKENS = _settings.max_query_tokens

class OdimSchema(strawberry.Schema):
    """Strawberry's default ``process_errors`` logs every error, expected ones included, with its stack
    and message as plain text outside the structured logs. Unexpected errors are logged (with the
    request id, user id and stack) by ``MaskUnexpectedErrors`` and counted by ``OperationMetrics``;
    expected ones (validation, FORBIDDEN, typed codes) need no log line."""

    def process_errors(self, errors, execution_context=None) -> None:
        return None


schema = OdimSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        # Factories, not instances (docs/pitfalls.md).
        lambda: AddValidationRules(LIMIT_RULES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        SecurityExtension,  # after ValidationCache: introspection and persisted queries (schema/security.py)
        RefuseNulCharacters,  # after ValidationCache: U+0000 in any text argument -> INVALID_INPUT (schema/text_guard.py)
        DbSessionExtension,
        OperationMetrics,  # before the masking: it sees the masked error codes (schema/observability.py)
        MaskUnexpectedErrors,
        AuditExtension,  # binds request metadata for audit rows; records authz.denied (schema/audit.py)
    ],
)
audit_admin_mutations(schema)  # admin.<mutationName> rows for every Mutation root field an admin runs
