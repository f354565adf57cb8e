"""Auditing at the GraphQL edge, for every context: the ``AuditExtension`` that binds each operation's
request metadata and records permission denials, and the auditing of every Mutation root field an
admin executes (``audit_admin_mutations``). The admin ``auditLog`` is schema/operations/audit_log.py.

Hooks, and what each writes (rows: models/shared/audit.py):

* ``AuditExtension.on_operation`` binds request id, client IP and the token's user id and role
  (``resolvers.audit.bind_context``) for every row written during the operation, and afterwards
  records ``authz.denied`` for each error whose ``extensions.code`` is FORBIDDEN or
  UNAUTHENTICATED (HTTP queries and mutations). ``on_stream_result`` does the same for each
  result of a WebSocket operation (Strawberry's subscription path); schema/fanout.py calls
  ``resolvers.audit.record_denials`` for refusals on the shared fan-out path.
* ``audit_admin_mutations(schema)`` wraps the resolver of each Mutation root field, once at start:
  when the caller's token says admin, it records ``admin.<fieldName>`` after the result is known,
  outcome ``ok``, ``failed`` (payload ``errors`` non-empty, or an exception; details carry the error
  codes) or ``denied`` (FORBIDDEN/UNAUTHENTICATED raised), with the input's ids, numbers, booleans
  and enum values (never its free text). It is a resolver wrapper on the Mutation root fields only,
  not a SchemaExtension ``resolve`` hook, which would run for every field of every query (about
  4 us per field, docs/conventions.md).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from enum import Enum
from inspect import isawaitable
from typing import Any

import strawberry
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLResolveInfo,
    OperationDefinitionNode,
)
from strawberry.extensions import SchemaExtension

from domain.shared import audit as audit_domain
from resolvers import audit as audit_resolvers

# --- the extension: request metadata and permission denials -------------------------------------------------


class AuditExtension(SchemaExtension):
    """Per operation: binds the audit request metadata, and records ``authz.denied`` for each
    FORBIDDEN / UNAUTHENTICATED error of its result(s). Never changes the result."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._streamed = False

    def _operation_name(self) -> str | None:
        """The operation's name, else its type (``query``, ``mutation``, ``subscription``), else None."""
        ec = self.execution_context
        if ec.operation_name:
            return ec.operation_name
        try:
            return ec.operation_type.value
        except Exception:  # no parsed document (a syntax error)
            return None

    def _root_fields(self) -> str | None:
        """The operation's root field names (``a,b``): the path of refusals that carry none."""
        try:
            document = self.execution_context.graphql_document
            name = self.execution_context.operation_name
            for definition in document.definitions if document else ():
                if isinstance(definition, OperationDefinitionNode) and (
                        name is None or (definition.name and definition.name.value == name)):
                    return ",".join(s.name.value for s in definition.selection_set.selections
                                    if isinstance(s, FieldNode)) or None
        except Exception:  # never let auditing break the response
            return None
        return None

    async def on_operation(self) -> AsyncIterator[None]:  # type: ignore[override]
        ctx = self.execution_context.context
        token = audit_resolvers.bind_context(ctx)
        try:
            yield
        finally:
            audit_domain.reset(token)
        if self._streamed:
            return  # WebSocket results were handled one by one in on_stream_result
        result = self.execution_context.result
        errors = getattr(result, "errors", None) or self.execution_context.pre_execution_errors
        await audit_resolvers.record_denials(ctx, errors, operation=self._operation_name(), transport="http",
                                             default_path=self._root_fields())

    async def on_stream_result(self, result: Any) -> AsyncIterator[None]:  # type: ignore[override]
        self._streamed = True
        await audit_resolvers.record_denials(
            self.execution_context.context, getattr(result, "errors", None), operation=self._operation_name(),
            transport="ws", default_path=self._root_fields(),
        )
        yield


# --- admin mutations ------------------------------------------------------------------------------------

_MAX_INPUT_VALUES = 30
_KEPT_SCALARS = ("ID", "Int", "Boolean")


def _unwrap(t: Any) -> Any:
    while isinstance(t, GraphQLNonNull):
        t = t.of_type
    return t


def _kept_inputs(t: GraphQLInputType, value: Any, path: str, out: dict[str, Any]) -> None:
    """Collect the ID, Int, Boolean and enum values of an argument value (dotted paths), skipping
    strings and floats: free text and coordinates may be personal data."""
    if value is None or len(out) >= _MAX_INPUT_VALUES:
        return
    t = _unwrap(t)
    if isinstance(t, GraphQLList):
        if not isinstance(value, list):
            return
        item_type = _unwrap(t.of_type)
        if isinstance(item_type, GraphQLInputObjectType):
            for i, item in enumerate(value):
                _kept_inputs(item_type, item, f"{path}.{i}", out)
        else:
            kept: dict[str, Any] = {}
            for i, item in enumerate(value[:_MAX_INPUT_VALUES]):
                _kept_inputs(item_type, item, str(i), kept)
            if kept:
                out[path] = list(kept.values())
        return
    if isinstance(t, GraphQLInputObjectType):
        if isinstance(value, dict):
            for name, field in t.fields.items():
                if name in value:
                    _kept_inputs(field.type, value[name], f"{path}.{name}" if path else name, out)
        return
    if getattr(t, "name", None) in _KEPT_SCALARS:
        out[path] = value[:100] if isinstance(value, str) else value
    elif hasattr(t, "values") and not hasattr(t, "fields"):  # an enum
        out[path] = value.name if isinstance(value, Enum) else str(value)


def admin_inputs(field: GraphQLField, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The auditable values of a mutation's arguments: ``{"input.serviceRequestId": "...", ...}``."""
    out: dict[str, Any] = {}
    for name, arg in field.args.items():
        if name in kwargs:
            _kept_inputs(arg.type, kwargs[name], name, out)
    return out


def _subject(inputs: dict[str, Any]) -> tuple[str | None, str | None]:
    """The object acted on: the first global id among the inputs (``Type:123``), else the first raw
    id whose key names its type (``serviceRequestId`` -> ServiceRequest)."""
    for path, value in inputs.items():
        key = path.rsplit(".", 1)[-1]
        if not isinstance(value, str | int) or not (key == "id" or key.endswith("Id")):
            continue
        raw = str(value)
        if raw.isdigit():
            if key != "id":
                return key[0].upper() + key[1:-2], raw
            continue
        try:
            kind, _, ident = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if kind.isidentifier() and ident.isdigit():
            return kind, ident
    return None, None


def _payload_error_codes(result: Any) -> list[str]:
    codes = []
    for error in getattr(result, "errors", None) or ():
        code = getattr(error, "code", None)
        codes.append(code.value if isinstance(code, Enum) else str(code))
    return codes


def _audited(name: str, field: GraphQLField) -> Any:
    resolve = field.resolve

    async def audited(source: Any, info: GraphQLResolveInfo, **kwargs: Any) -> Any:
        claims = getattr(info.context, "claims", None)
        if claims is None or claims.role != "admin":
            result = resolve(source, info, **kwargs)
            return await result if isawaitable(result) else result
        inputs = admin_inputs(field, kwargs)
        subject_type, subject_id = _subject(inputs)
        try:
            result = resolve(source, info, **kwargs)
            if isawaitable(result):
                result = await result
        except Exception as exc:
            code = (exc.extensions or {}).get("code") if isinstance(exc, GraphQLError) else None
            outcome = "denied" if code in audit_resolvers.DENIAL_CODES else "failed"
            await audit_domain.record_detached(
                action=f"admin.{name}", outcome=outcome, subject_type=subject_type, subject_id=subject_id,
                details={"input": inputs, "errorCodes": [code or "INTERNAL_SERVER_ERROR"]},
            )
            raise
        codes = _payload_error_codes(result)
        await audit_domain.record_detached(
            action=f"admin.{name}", outcome="failed" if codes else "ok", subject_type=subject_type,
            subject_id=subject_id, details={"input": inputs, "errorCodes": codes},
        )
        return result

    audited.__wrapped__ = resolve  # type: ignore[attr-defined]
    return audited


def audit_admin_mutations(schema: strawberry.Schema) -> None:
    """Wrap every Mutation root field of ``schema`` so that admin callers' calls are audited
    (``admin.<fieldName>``, see the module doc). Idempotent; call once after building the schema."""
    mutation_type = schema._schema.mutation_type
    if mutation_type is None:
        return
    for name, field in mutation_type.fields.items():
        if field.resolve is not None and not hasattr(field.resolve, "__wrapped__"):
            field.resolve = _audited(name, field)
