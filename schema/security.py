"""GraphQL-level hardening: introspection only for admins (and in development), and the
persisted-query allow-list mode.

``SecurityExtension`` runs after the validation cache (see schema/__init__.py): it adds its errors to
the operation's pre-execution errors, so a refused document is answered with ``data: null`` and
never executed (no resolver runs, nothing is written).

Persisted queries (``persisted_queries_file``: JSON ``{"<sha256 hex of the query text>": "<query>"}``):

* a request without ``query`` but with ``extensions.persistedQuery.sha256Hash`` (Apollo's automatic
  persisted queries) runs the listed document of that hash; an unknown hash gets
  ``PERSISTED_QUERY_NOT_FOUND`` (``PERSISTED_QUERY_NOT_ALLOWED`` in allow-list mode);
* with ``persisted_queries_only`` on, a full ``query`` runs only when the SHA-256 of its exact text
  is listed; anything else gets ``PERSISTED_QUERY_NOT_ALLOWED``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from graphql import BREAK, DocumentNode, FieldNode, GraphQLError, Visitor, visit
from strawberry.extensions import SchemaExtension

from settings import PROJECT_ROOT, get_settings

log = structlog.get_logger("odim.graphql.security")

INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
_allow_list_cache: dict[tuple[str, float], dict[str, str]] = {}


def query_hash(query: str) -> str:
    """Hex SHA-256 of the exact query text (UTF-8), as Apollo's persisted queries compute it."""
    return hashlib.sha256(query.encode()).hexdigest()


def allow_list() -> dict[str, str]:
    """The allow-list of ``persisted_queries_file`` ({sha256 hex: query}); re-read when the file
    changes; {} without a file (or an unreadable one, logged). Hashes are checked against their
    query on load: a wrong entry is dropped and logged."""
    configured = get_settings().persisted_queries_file
    if configured is None:
        return {}
    path = configured if configured.is_absolute() else PROJECT_ROOT / configured
    try:
        stamp = (str(path), path.stat().st_mtime)
    except OSError as exc:
        log.error("persisted_queries.unreadable", path=str(path), error=type(exc).__name__)
        return {}
    cached = _allow_list_cache.get(stamp)
    if cached is None:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            log.error("persisted_queries.unreadable", path=str(path), error=type(exc).__name__)
            return {}
        cached = {}
        for digest, query in raw.items() if isinstance(raw, dict) else ():
            if isinstance(query, str) and query_hash(query) == str(digest).lower():
                cached[str(digest).lower()] = query
            else:
                log.error("persisted_queries.bad_entry", path=str(path), hash=str(digest)[:64])
        _allow_list_cache.clear()
        _allow_list_cache[stamp] = cached
    return cached


class _IntrospectionFinder(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_field(self, node: FieldNode, *_: Any) -> Any:
        if node.name.value in INTROSPECTION_FIELDS:
            self.found = True
            return BREAK
        return None


def uses_introspection(document: DocumentNode) -> bool:
    """Whether any operation or fragment of ``document`` selects ``__schema`` or ``__type``
    (``__typename`` is not introspection here: clients need it for unions and caches)."""
    finder = _IntrospectionFinder()
    visit(document, finder)
    return finder.found


def _error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


class SecurityExtension(SchemaExtension):
    """Refuses, before execution: introspection (``__schema``/``__type``) with FORBIDDEN unless the
    environment is "development" or the caller is an admin; documents outside the persisted-query
    allow-list (module docstring). Must come after ``ValidationCache`` in the extension list."""

    def __init__(self) -> None:
        self._refusal: GraphQLError | None = None

    async def on_operation(self) -> AsyncIterator[None]:  # type: ignore[override]
        ec = self.execution_context
        self._refusal = None
        persisted = (ec.operation_extensions or {}).get("persistedQuery")
        digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if not ec.query and isinstance(digest, str):
            listed = allow_list().get(digest.lower())
            if listed is not None:
                ec.query = listed
            else:
                only = get_settings().persisted_queries_only
                self._refusal = (
                    _error("This server only runs its persisted queries; this one is not among them",
                           "PERSISTED_QUERY_NOT_ALLOWED") if only
                    else _error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
                )
                # A stand-in document (named as the request's operation) so that parsing and the
                # operation type check pass; it is refused before execution.
                name = ec.operation_name if ec.operation_name and _NAME.match(ec.operation_name) else ""
                ec.query = f"query {name} {{ __typename }}"
        yield

    async def on_validate(self) -> AsyncIterator[None]:  # type: ignore[override]
        ec = self.execution_context
        errors: list[GraphQLError] = []
        if self._refusal is not None:
            errors.append(self._refusal)
        elif get_settings().persisted_queries_only and query_hash(ec.query or "") not in allow_list():
            errors.append(_error("This server only runs its persisted queries; this one is not among them",
                                 "PERSISTED_QUERY_NOT_ALLOWED"))
        elif ec.graphql_document is not None and uses_introspection(ec.graphql_document):
            refusal = await self._introspection_refusal()
            if refusal is not None:
                errors.append(refusal)
        if errors:
            log.info("graphql.refused", codes=[e.extensions.get("code") for e in errors])
            ec.pre_execution_errors = [*(ec.pre_execution_errors or []), *errors]
        yield

    async def _introspection_refusal(self) -> GraphQLError | None:
        if get_settings().environment == "development":
            return None
        viewer = getattr(self.execution_context.context, "viewer", None)
        if viewer is None:
            return _error("Introspection is only available to operators (admins)", "FORBIDDEN")
        try:
            user = await viewer()
        except GraphQLError as exc:  # an expired or invalid token: say so (UNAUTHENTICATED)
            return exc
        if user is None or user.role != "admin":
            return _error("Introspection is only available to operators (admins)", "FORBIDDEN")
        return None


def build_allow_list(paths: list[Path]) -> dict[str, str]:
    """An allow-list ``{sha256: query}`` from ``.graphql``/``.gql`` files (directories are searched
    recursively; each file holds one document, sent by clients byte for byte as stored). Every
    document is parsed and validated against the schema first. Raises ValueError naming the first
    file that is not a valid document, or when no file is found."""
    from graphql import parse, validate

    from schema import schema as odim_schema

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".graphql", ".gql") and p.is_file())
        else:
            files.append(path)
    if not files:
        raise ValueError("no .graphql or .gql files found")
    out: dict[str, str] = {}
    for file in files:
        query = file.read_text()
        try:
            errors = validate(odim_schema._schema, parse(query))
        except GraphQLError as exc:
            errors = [exc]
        if errors:
            raise ValueError(f"{file}: {errors[0].message}")
        out[query_hash(query)] = query
    return out
