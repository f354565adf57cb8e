"""Refuse text arguments holding the NUL character (U+0000) before anything executes.

PostgreSQL ``text`` and ``varchar`` cannot store or compare U+0000: a query parameter holding it
fails with "invalid byte sequence for encoding UTF8: 0x00", which surfaced as INTERNAL_SERVER_ERROR
from every resolver that passes a string to SQL (``services(category:)``, idempotency keys, ...;
found by the GraphQL fuzzer, tests/system/fuzzing.py). No legitimate input contains it, so the whole
operation is refused up front with one typed error instead of guarding each argument.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, StringValueNode, visit
from graphql.language import Visitor
from strawberry.extensions import SchemaExtension

NUL = "\x00"


def holds_nul(value: Any) -> bool:
    """Whether ``value`` (decoded JSON variables: str, list, dict, scalars) has a string with U+0000."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(v) for v in value)
    return False


class _NulLiteralFinder(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        if NUL in node.value:
            self.found = True
            return self.BREAK
        return None


def document_holds_nul(query: str | None, document: Any) -> bool:
    """Whether a string literal of the parsed ``document`` holds U+0000. A GraphQL document cannot
    hold a raw NUL (the lexer refuses it), only an escape, so documents without ``\\u`` are skipped."""
    if document is None or not query or "\\u" not in query:
        return False
    finder = _NulLiteralFinder()
    visit(document, finder)
    return finder.found


class RefuseNulCharacters(SchemaExtension):
    """Before validation: an operation whose string literals or variables hold U+0000 gets one error
    ``extensions.code = "INVALID_INPUT"`` and does not run. Listed after ``ValidationCache`` (whose
    own errors, for an invalid document, are kept as they are)."""

    def on_validate(self) -> Iterator[None]:  # type: ignore[override]
        ctx = self.execution_context
        if not ctx.pre_execution_errors and (
            holds_nul(ctx.variables) or document_holds_nul(ctx.query, ctx.graphql_document)
        ):
            ctx.pre_execution_errors = [GraphQLError(
                "Text must not contain the NUL character (U+0000)", extensions={"code": "INVALID_INPUT"},
            )]
        yield
