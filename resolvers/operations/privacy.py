"""Data protection over GraphQL: a customer's data export and account erasure (domain/operations/privacy.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from domain.operations import privacy as privacy_domain
from domain.shared import audit
from domain.shared.errors import DomainError
from gateways.storage import StorageError, get_storage
from models.db import session_scope
from resolvers.context import Context, forbidden
from resolvers.errors import PayloadError, to_payload_error
from resolvers.ids import decode_id

log = structlog.get_logger(__name__)


@dataclass
class DeletionResult:
    """``report`` when the account was erased, else the typed ``errors``."""

    report: privacy_domain.DeletionReport | None
    errors: list[PayloadError] = field(default_factory=list)


async def my_data_export(ctx: Context) -> dict[str, Any]:
    """The calling customer's data export (domain.operations.privacy.export_customer_data). UNAUTHENTICATED for
    anonymous callers, FORBIDDEN for providers and admins (their accounts are not customer data here)."""
    user = await ctx.require_user()
    if user.role != "customer":
        raise forbidden("Only customer accounts have a data export; operators use customerDataExport")
    async with session_scope() as session:
        data = await privacy_domain.export_customer_data(session, user.id)
        await audit.record(session, action="privacy.export", subject_type="User", subject_id=user.id,
                           details={"by": "self"})
    return data


async def customer_data_export(ctx: Context, user_id: str) -> dict[str, Any] | None:
    """Admins: the data export of customer ``user_id`` (a User global id), or None when no customer
    account has that id. Audited (``privacy.export``)."""
    await ctx.require_admin()
    try:
        ident = decode_id(user_id, "User", field="userId")
        async with session_scope() as session:
            data = await privacy_domain.export_customer_data(session, ident)
            await audit.record(session, action="privacy.export", subject_type="User", subject_id=ident,
                               details={"by": "admin"})
    except DomainError:  # not a User id, no such account, not a customer
        return None
    return data


async def delete_my_account(ctx: Context, *, password: str) -> DeletionResult:
    """Erase the calling customer's account once its ``password`` is confirmed; its tokens stop
    working at once. Errors: INVALID_CREDENTIALS, OPEN_ORDERS. FORBIDDEN for providers and admins
    (their accounts are erased by other means: providers hold money and payout details)."""
    user = await ctx.require_user()
    if user.role != "customer":
        raise forbidden("Only customer accounts can be deleted here")
    try:
        async with session_scope() as session:
            report = await privacy_domain.delete_customer_account(session, user.id, password=password, by="self")
    except DomainError as exc:
        return DeletionResult(None, [to_payload_error(exc)])
    await _delete_documents(report.document_keys)
    return DeletionResult(report)


async def delete_customer_account(ctx: Context, *, user_id: str) -> DeletionResult:
    """Admins: erase customer ``user_id`` (a User global id). Errors: INVALID_ID, NOT_FOUND,
    NOT_A_CUSTOMER, ACCOUNT_DELETED, OPEN_ORDERS."""
    await ctx.require_admin()
    try:
        ident = decode_id(user_id, "User", field="userId")
        async with session_scope() as session:
            report = await privacy_domain.delete_customer_account(session, ident, by="admin")
    except DomainError as exc:
        return DeletionResult(None, [to_payload_error(exc)])
    await _delete_documents(report.document_keys)
    return DeletionResult(report)


async def _delete_documents(keys: list[str]) -> None:
    """Delete erased provider-application documents from storage, after the erasure committed. A
    failure is logged (``privacy.orphan_file``, key only) and does not undo the erasure."""
    storage = get_storage()
    for key in keys:
        try:
            await storage.delete(key)
        except StorageError as exc:
            log.error("privacy.orphan_file", key=key, error=type(exc).__name__)
