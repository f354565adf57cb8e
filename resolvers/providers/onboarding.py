"""Provider onboarding resolvers: the applicant's steps, uploads and submission, the admin
queue and decisions, and the admin's document download (HTTP route).

Writes run in ``session_scope()`` (committed when it exits); the uploaded bytes are stored before
the metadata row is inserted and deleted again when that transaction fails, so a refused or failed
upload leaves neither a row nor a file. A removed document's file is deleted after commit. After
an approval commits, the discovery cache of the provider's area is invalidated
(``domain.providers.discovery.invalidate_provider``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from domain.providers import discovery
from domain.providers import onboarding as onb
from domain.providers.provider import GeoPoint
from domain.shared import audit
from domain.shared.errors import CommonErrorCode, DomainError
from gateways.storage import ObjectNotFound, StorageError, get_storage
from models import ApplicationDocument
from models.crypto import DecryptionError
from models.db import session_scope
from resolvers.audit import bind_context, denial_code, record_denial
from resolvers.context import Context, bearer_token
from resolvers.errors import PayloadError, bad_input, to_payload_error
from resolvers.ids import decode_id
from resolvers.pagination import page_size
from settings import get_settings

log = structlog.get_logger("odim.onboarding")

_READ_CHUNK = 256 * 1024
EXTENSIONS = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}


@dataclass
class ApplicationResult:
    application: onb.ApplicationView | None
    errors: list[PayloadError]


@dataclass
class DocumentResult:
    document: ApplicationDocument | None
    application: onb.ApplicationView | None
    errors: list[PayloadError]


def _errors(exc: DomainError) -> list[PayloadError]:
    if isinstance(exc, onb.ApplicationIncomplete):
        return [to_payload_error(p) for p in exc.problems]
    return [to_payload_error(exc)]


async def _view(application_id: int) -> onb.ApplicationView | None:
    async with session_scope() as session:
        return (await onb.application_views(session, [application_id])).get(application_id)


def _optional_id(value: str | None, type_name: str, field: str) -> int | None:
    return None if value is None else decode_id(value, type_name, field=field)


# --- applicant -------------------------------------------------------------------------------------

async def my_application(ctx: Context) -> onb.ApplicationView | None:
    """The caller's newest application (any device: the same account sees the same progress)."""
    user = await ctx.require_user()
    async with ctx.db() as session:
        return await onb.my_application(session, user.id)


async def save_step(
    ctx: Context, *, step: str, business: onb.BusinessDetails | None, categories: list[str] | None,
    center: tuple[float, float] | None, radius_km: float | None, polygon: list[tuple[float, float]] | None,
    area_given: bool,
) -> ApplicationResult:
    user = await ctx.require_user()
    try:
        area = None
        if area_given:
            area = onb.ServiceArea(
                center=GeoPoint(*center) if center else None, radius_km=radius_km,
                polygon=[GeoPoint(lat, lon) for lat, lon in polygon] if polygon is not None else None,
            )
        async with session_scope() as session:
            app = await onb.save_step(session, user.id, step, business=business, categories=categories, area=area)
            app_id = app.id
    except DomainError as exc:
        if exc.code == "INVALID_LOCATION":
            exc.field = "serviceArea"
        return ApplicationResult(None, _errors(exc))
    return ApplicationResult(await _view(app_id), [])


async def _read_upload(file: Any, max_bytes: int) -> tuple[bytes, str, str | None]:
    """``(bytes, filename, declared content type)`` of a multipart file, reading at most
    ``max_bytes + 1`` bytes. Raises ``UnsupportedFileType`` when ``file`` is not an uploaded file
    (a JSON request that put something else in the ``Upload`` variable), ``FileTooLarge``."""
    if not hasattr(file, "read"):
        raise onb.UnsupportedFileType("`file` must be a file sent with the GraphQL multipart request spec")
    size = getattr(file, "size", None)
    if isinstance(size, int) and size > max_bytes:
        raise onb.FileTooLarge(f"The file is larger than {max_bytes} bytes")
    chunks, total = [], 0
    while total <= max_bytes:
        chunk = await file.read(_READ_CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise onb.FileTooLarge(f"The file is larger than {max_bytes} bytes")
    return b"".join(chunks), getattr(file, "filename", None) or "document", getattr(file, "content_type", None)


async def upload_document(ctx: Context, *, application_id: str | None, kind: str, file: Any) -> DocumentResult:
    """Check the file (type by magic bytes, size), store it, then insert its row; on any failure
    nothing stays (the stored bytes are deleted again)."""
    user = await ctx.require_user()
    max_bytes = get_settings().upload_max_bytes
    key: str | None = None
    storage = get_storage()
    try:
        onb.check_applicant(user)
        ident = _optional_id(application_id, "ProviderApplication", "applicationId")
        if kind not in onb.DOCUMENT_KINDS:
            raise onb.InvalidDocumentKind(f"kind is one of {', '.join(onb.DOCUMENT_KINDS)}", field="kind")
        data, filename, declared = await _read_upload(file, max_bytes)
        # SHA-256 of up to 10 MiB is ~11 ms of CPU: off the event loop.
        checked = await asyncio.to_thread(onb.check_file, data, declared, max_bytes=max_bytes)
        async with session_scope() as session:
            app = await onb.application_for_upload(session, user.id, ident)
            key = onb.new_storage_key(app.id)
            sealed = await asyncio.to_thread(onb.seal_document, key, checked.data)  # ~5 ms for 10 MiB
            await storage.put(key, sealed, checked.content_type)
            doc = await onb.add_document(session, app, kind=kind, filename=filename, checked=checked, storage_key=key)
            app_id = app.id
    except DomainError as exc:
        await _discard(storage, key)
        return DocumentResult(None, None, _errors(exc))
    except StorageError as exc:
        log.error("onboarding.storage_failed", error=str(exc))
        await _discard(storage, key)
        return DocumentResult(None, None, [PayloadError("file", CommonErrorCode.STORAGE_UNAVAILABLE,
                                                        "The file could not be stored; try again later")])
    except BaseException:
        await _discard(storage, key)
        raise
    return DocumentResult(doc, await _view(app_id), [])


async def _discard(storage, key: str | None) -> None:
    if key is None:
        return
    try:
        await storage.delete(key)
    except StorageError as exc:  # an orphan file holds no row: logged for clean-up
        log.error("onboarding.orphan_file", key=key, error=str(exc))


async def remove_document(ctx: Context, *, document_id: str) -> ApplicationResult:
    user = await ctx.require_user()
    try:
        ident = decode_id(document_id, "ApplicationDocument", field="documentId")
        async with session_scope() as session:
            app, key = await onb.remove_document(session, user.id, ident)
            app_id = app.id
    except DomainError as exc:
        return ApplicationResult(None, _errors(exc))
    await _discard(get_storage(), key)
    return ApplicationResult(await _view(app_id), [])


async def submit(ctx: Context, *, application_id: str | None) -> ApplicationResult:
    user = await ctx.require_user()
    try:
        ident = _optional_id(application_id, "ProviderApplication", "applicationId")
        async with session_scope() as session:
            app = await onb.submit(session, user.id, ident)
            app_id = app.id
    except DomainError as exc:
        return ApplicationResult(None, _errors(exc))
    return ApplicationResult(await _view(app_id), [])


# --- admin -----------------------------------------------------------------------------------------

async def application_queue(
    ctx: Context, *, status: str, first: int | None, after: str | None,
) -> tuple[list[onb.ApplicationView], bool]:
    await ctx.require_admin()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            return await onb.application_queue(session, status=status, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc


async def application_nodes(ctx: Context, ids: list[int]) -> list[onb.ApplicationView | None]:
    """Applications by global id: the applicant's own and, for admins, any; None otherwise."""
    viewer = await ctx.viewer()
    if viewer is None:
        return [None] * len(ids)
    async with ctx.db() as session:
        views = await onb.application_views(session, ids)
    return [v if v and (viewer.role == "admin" or v.application.user_id == viewer.id) else None
            for v in (views.get(i) for i in ids)]


async def _invalidate_discovery(provider_id: int) -> None:
    """Tell discovery (domain/providers/discovery.py) that a provider changed, after commit (never raises for Redis)."""
    await discovery.invalidate_provider(provider_id)


async def approve(ctx: Context, *, application_id: str) -> ApplicationResult:
    admin = await ctx.require_admin()
    try:
        ident = decode_id(application_id, "ProviderApplication", field="applicationId")
        async with session_scope() as session:
            app, provider = await onb.approve(session, admin.id, ident)
            app_id, provider_id = app.id, provider.id
    except DomainError as exc:
        return ApplicationResult(None, _errors(exc))
    await _invalidate_discovery(provider_id)
    return ApplicationResult(await _view(app_id), [])


async def reject(ctx: Context, *, application_id: str, reason: str) -> ApplicationResult:
    admin = await ctx.require_admin()
    try:
        ident = decode_id(application_id, "ProviderApplication", field="applicationId")
        async with session_scope() as session:
            app_id = (await onb.reject(session, admin.id, ident, reason)).id
    except DomainError as exc:
        return ApplicationResult(None, _errors(exc))
    return ApplicationResult(await _view(app_id), [])


async def request_documents(ctx: Context, *, application_id: str, kinds: list[str], message: str) -> ApplicationResult:
    admin = await ctx.require_admin()
    try:
        ident = decode_id(application_id, "ProviderApplication", field="applicationId")
        async with session_scope() as session:
            app_id = (await onb.request_documents(session, admin.id, ident, kinds, message)).id
    except DomainError as exc:
        return ApplicationResult(None, _errors(exc))
    return ApplicationResult(await _view(app_id), [])


def document_path(document_id: int) -> str:
    """Where an admin downloads a document (``download_document``)."""
    return f"/admin/application-documents/{document_id}"


async def download_document(request: Request) -> Response:
    """``GET /admin/application-documents/{id}`` with ``Authorization: Bearer <admin token>`` (an
    MFA sign-in): the document's bytes with its detected content type, as an attachment, never
    cached. 401 without a valid token, 403 for everyone but admins (audited ``authz.denied``), 404
    for an unknown id or a missing file; each download is audited as
    ``admin.downloadApplicationDocument`` (document and application ids)."""
    ctx = Context(request=request)
    ctx.authenticate(bearer_token(request.headers.get("authorization")))
    operation = "GET /admin/application-documents"
    try:
        await ctx.require_admin()
    except GraphQLError as error:
        code = denial_code(error) or "FORBIDDEN"
        await record_denial(ctx, code=code, operation=operation, path=None, transport="http")
        return JSONResponse({"error": error.message, "code": code}, status_code=401 if code == "UNAUTHENTICATED" else 403)
    finally:
        await ctx.close()
    try:
        ident = decode_id(request.path_params["document_id"], "ApplicationDocument", field="documentId")
        async with session_scope() as session:
            doc = await onb.document_for_admin(session, ident)
        data = await asyncio.to_thread(onb.open_document, doc.storage_key, await get_storage().get(doc.storage_key))
    except DomainError as exc:
        return JSONResponse({"error": exc.message, "code": exc.code}, status_code=404)
    except ObjectNotFound:
        log.error("onboarding.file_missing", document_id=doc.id)
        return JSONResponse({"error": "The file of this document is missing", "code": "NOT_FOUND"}, status_code=404)
    except DecryptionError as exc:  # a key removed from settings too early, or a tampered file
        log.error("onboarding.file_undecryptable", document_id=doc.id, error=str(exc))
        return JSONResponse({"error": "The file of this document cannot be decrypted", "code": "DOCUMENT_UNREADABLE"},
                            status_code=500)
    token = bind_context(ctx)
    try:
        await audit.record_detached(action="admin.downloadApplicationDocument", subject_type="ApplicationDocument",
                                    subject_id=doc.id, details={"documentId": doc.id,
                                                                "applicationId": doc.application_id})
    finally:
        audit.reset(token)
    filename = f"{doc.kind}-{doc.id}.{EXTENSIONS.get(doc.content_type, 'bin')}"
    return Response(data, media_type=doc.content_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store",
        "X-Content-Sha256": doc.sha256,
    })

