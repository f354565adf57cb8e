"""Provider onboarding and vetting: an account applies to become a provider step by step
(business details, categories, service area, documents), submits, and an admin approves, rejects
(with a reason) or asks for more documents. Models and lifecycle: models/providers/onboarding.py.

Rules ("Provider onboarding and vetting"):

* Any signed-in account but an operator may apply; an account that already has a verified provider
  profile gets ``AlreadyAProvider``. One open application per account (database: partial unique index).
* The applicant edits (steps, documents) only while the application is ``draft`` or
  ``more_documents_requested`` (``ApplicationLocked`` otherwise). ``progress`` records the completed
  steps and the last one, so another device resumes where the first stopped.
* Documents: PDF, JPEG or PNG recognised by their magic bytes (the declared type must agree when it
  names one of those), at most ``settings.upload_max_bytes``, SHA-256 stored. A refused file is never
  stored (``UnsupportedFileType``, ``FileTooLarge``).
* Submitting needs business details, at least one category, a service area and the ``id_card`` and
  ``business_registration`` documents: ``ApplicationIncomplete`` lists every gap at once.
* Approval makes (or updates) the account's Provider row: verified, location = the area's point (a
  polygon's centroid), categories, display name = business name, service area; the account's role
  becomes ``provider``. Every decision writes an audit row (``provider_application.<decision>``) and
  queues an email to the applicant (kind ``provider_application``) in the same transaction.

Search and work only reach ``verified AND available AND NOT suspended`` providers: domain/providers/provider.py
(geosearch), domain/providers/availability.py (slots), domain/bookings/booking.py and domain/orders/service_request.py
(assignment) already require it; tests/providers/test_onboarding.py checks it end to end.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from domain.identity.user import InvalidPhone, normalise_phone
from domain.messaging import notification
from domain.providers.errors import ProvidersErrorCode
from domain.providers.provider import GeoPoint, provider_for_user
from domain.shared import audit, pagination
from domain.shared.errors import CommonErrorCode, DomainError, Forbidden, NotFound
from models import ApplicationDocument, Provider, ProviderApplication, User
from models.crypto import current_key_id, decrypt_bytes, encrypt_bytes, is_encrypted_bytes
from models.providers.onboarding import APPLICATION_STATUSES, DOCUMENT_KINDS, OPEN_STATUSES

STEPS = ("business", "categories", "service_area", "documents")
EDITABLE_STATUSES = ("draft", "more_documents_requested")
REQUIRED_DOCUMENTS = ("id_card", "business_registration")
DOCUMENT_LABELS = {"id_card": "ID card", "business_registration": "Business registration",
                   "certificate": "Certificate (qualification, licence, insurance)"}
MAX_CATEGORIES = 20
MAX_POLYGON_VERTICES = 200
MAX_RADIUS_KM = 100.0
MAX_REASON_CHARS = 2000
CURSOR_KIND = "papp"

# Magic bytes of the accepted types (the first bytes of the file): PDF 1.x/2.0 (ISO 32000 7.5.2:
# "%PDF-"), JPEG (JFIF/EXIF: SOI marker FF D8 then a marker FF), PNG (RFC 2083 3.1 signature).
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
ALLOWED_CONTENT_TYPES = tuple(t for _, t in SIGNATURES)
_CATEGORY = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_COUNTRY = re.compile(r"[A-Z]{2}")


# --- errors --------------------------------------------------------------------------------------

class AlreadyAProvider(DomainError):
    code = ProvidersErrorCode.ALREADY_A_PROVIDER


class ApplicationLocked(DomainError):
    code = ProvidersErrorCode.APPLICATION_LOCKED


class InvalidTransition(DomainError):
    code = CommonErrorCode.INVALID_TRANSITION


class MissingField(DomainError):
    code = ProvidersErrorCode.MISSING_FIELD


class InvalidServiceArea(DomainError):
    code = ProvidersErrorCode.INVALID_SERVICE_AREA
    field = "serviceArea"


class InvalidCategory(DomainError):
    code = ProvidersErrorCode.INVALID_CATEGORY
    field = "categories"


class UnsupportedFileType(DomainError):
    code = ProvidersErrorCode.UNSUPPORTED_FILE_TYPE
    field = "file"


class FileTooLarge(DomainError):
    code = ProvidersErrorCode.FILE_TOO_LARGE
    field = "file"


class InvalidDocumentKind(DomainError):
    code = ProvidersErrorCode.INVALID_DOCUMENT_KIND
    field = "kinds"


class ReasonRequired(DomainError):
    code = ProvidersErrorCode.REASON_REQUIRED
    field = "reason"


class ApplicationIncomplete(DomainError):
    """Submit refused: ``problems`` lists every missing part (codes MISSING_BUSINESS_DETAILS,
    MISSING_CATEGORIES, MISSING_SERVICE_AREA, MISSING_DOCUMENT)."""

    code = ProvidersErrorCode.INCOMPLETE

    def __init__(self, problems: list[DomainError]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


# --- inputs and views ----------------------------------------------------------------------------

@dataclass(frozen=True)
class BusinessDetails:
    """The business step: all required but ``registration_number``; ``phone`` in international form."""

    business_name: str
    phone: str
    address: str
    city: str
    country_code: str
    registration_number: str | None = None


@dataclass(frozen=True)
class ServiceArea:
    """A centre and a radius in km (0 < r <= 100), or a polygon: a ring of >= 3 WGS84 points (closed
    automatically), at most 200 vertices, not self-intersecting."""

    center: GeoPoint | None = None
    radius_km: float | None = None
    polygon: list[GeoPoint] | None = None


@dataclass
class ApplicationView:
    """An application with its geography in degrees and its documents (oldest first)."""

    application: ProviderApplication
    center: tuple[float, float] | None = None  # (latitude, longitude)
    polygon: list[tuple[float, float]] | None = None  # ring of (latitude, longitude), closed
    documents: list[ApplicationDocument] = field(default_factory=list)


@dataclass(frozen=True)
class CheckedFile:
    """A file that passed the checks: ``content_type`` detected from its bytes, ``sha256`` hex."""

    data: bytes
    content_type: str
    sha256: str


# --- applicant side ------------------------------------------------------------------------------

async def _user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such account")
    return user


async def latest_application(session: AsyncSession, user_id: int) -> ProviderApplication | None:
    """The account's newest application (any status), or None. One statement."""
    return await session.scalar(
        select(ProviderApplication).where(ProviderApplication.user_id == user_id)
        .order_by(ProviderApplication.id.desc()).limit(1)
    )


def check_applicant(user: User) -> None:
    """Raises ``Forbidden`` for operators (admins): they vet applications, they do not apply."""
    if user.role == "admin":
        raise Forbidden("Operators cannot apply as providers")


async def _open_application(session: AsyncSession, user: User, *, create: bool) -> ProviderApplication:
    """The account's open application, locked FOR UPDATE; a new draft when there is none and
    ``create``. Raises ``Forbidden`` (operators), ``AlreadyAProvider``, ``NotFound``.

    With ``create`` the account's row is locked first (FOR NO KEY UPDATE, which foreign-key checks
    of other tables do not wait for), so two devices saving a first step at once share one draft:
    the second waits, then finds the first's application instead of breaking the one-open-
    application index."""
    check_applicant(user)
    if create:
        await session.execute(select(User.id).where(User.id == user.id).with_for_update(key_share=True))
    app = await session.scalar(
        select(ProviderApplication)
        .where(ProviderApplication.user_id == user.id, ProviderApplication.status.in_(OPEN_STATUSES))
        .with_for_update(key_share=True)
    )
    if app is not None:
        return app
    provider = await provider_for_user(session, user.id)
    if provider is not None and provider.verified:
        raise AlreadyAProvider("This account is already an approved provider")
    if not create:
        raise NotFound("You have no open provider application: save a step first", field="applicationId")
    app = ProviderApplication(user_id=user.id, status="draft", progress={"completedSteps": [], "lastStep": None})
    session.add(app)
    await session.flush()
    return app


def _editable(app: ProviderApplication) -> None:
    if app.status not in EDITABLE_STATUSES:
        raise ApplicationLocked("The application was submitted and waits for a decision: it cannot be changed now")


def _mark_step(app: ProviderApplication, step: str) -> None:
    done = set((app.progress or {}).get("completedSteps", []))
    done.add(step)
    app.progress = {"completedSteps": [s for s in STEPS if s in done], "lastStep": step}


def _clean(value: str | None, field_name: str, limit: int, *, required: bool = True) -> str | None:
    cleaned = " ".join((value or "").split())
    if not cleaned:
        if required:
            raise MissingField(f"{field_name} is required", field=field_name)
        return None
    if len(cleaned) > limit:
        raise DomainError(f"{field_name} is at most {limit} characters", field=field_name)
    return cleaned


def check_business(details: BusinessDetails) -> BusinessDetails:
    """Normalised details (spaces collapsed, phone in E.164, country upper-case). Raises
    ``MissingField``, ``InvalidPhone`` (field phone), ``DomainError`` INVALID (too long, bad country)."""
    country = (details.country_code or "").strip().upper()
    if not _COUNTRY.fullmatch(country):
        raise DomainError("countryCode is an ISO 3166-1 alpha-2 code, e.g. CM", field="business.countryCode")
    try:
        phone = normalise_phone(_clean(details.phone, "business.phone", 40), country)
    except InvalidPhone as exc:
        raise InvalidPhone(exc.message, field="business.phone") from exc
    return BusinessDetails(
        business_name=_clean(details.business_name, "business.businessName", 200),
        phone=phone,
        address=_clean(details.address, "business.address", 500),
        city=_clean(details.city, "business.city", 120),
        country_code=country,
        registration_number=_clean(details.registration_number, "business.registrationNumber", 64, required=False),
    )


def check_categories(categories: list[str]) -> list[str]:
    """Lower-cased, de-duplicated (first order kept) category slugs ``[a-z0-9][a-z0-9_-]{0,39}``,
    1 to 20 of them. Raises ``InvalidCategory``."""
    out: list[str] = []
    for raw in categories:
        slug = raw.strip().lower()
        if not _CATEGORY.fullmatch(slug):
            raise InvalidCategory(f"Not a category: {raw[:40]!r} (letters, digits, '-' and '_', at most 40)")
        if slug not in out:
            out.append(slug)
    if not out:
        raise InvalidCategory("Choose at least one category")
    if len(out) > MAX_CATEGORIES:
        raise InvalidCategory(f"At most {MAX_CATEGORIES} categories")
    return out


async def _area_values(session: AsyncSession, area: ServiceArea) -> dict:
    """Column values of a checked service area. Raises ``InvalidServiceArea``."""
    if area.polygon is not None:
        if area.center is not None or area.radius_km is not None:
            raise InvalidServiceArea("Give either a centre and a radius, or a polygon, not both")
        ring = list(area.polygon)
        if len(ring) >= 2 and ring[0] == ring[-1]:
            ring = ring[:-1]
        if not 3 <= len(ring) <= MAX_POLYGON_VERTICES:
            raise InvalidServiceArea(f"A polygon needs 3 to {MAX_POLYGON_VERTICES} distinct corners")
        ring.append(ring[0])
        wkt = "POLYGON((" + ", ".join(f"{p.longitude!r} {p.latitude!r}" for p in ring) + "))"
        row = (await session.execute(text(
            "SELECT ST_IsValid(g) AS valid, ST_Area(g::geography) AS area_m2,"
            " ST_AsText(ST_PointOnSurface(g)) AS inside, ST_AsText(ST_Centroid(g)) AS centroid"
            " FROM (SELECT ST_GeomFromText(:wkt, 4326) AS g) s"
        ), {"wkt": wkt})).one()
        if not row.valid or not row.area_m2:
            raise InvalidServiceArea("The polygon crosses itself or has no area")
        # The centroid of a concave area may lie outside it: then a point on its surface.
        centroid = row.centroid
        inside = (await session.scalar(text(
            "SELECT ST_Contains(ST_GeomFromText(:wkt, 4326), ST_GeomFromText(:c, 4326))"
        ), {"wkt": wkt, "c": centroid}))
        return {"service_area": f"SRID=4326;{wkt}", "service_radius_km": None,
                "service_point": f"SRID=4326;{centroid if inside else row.inside}"}
    if area.center is None or area.radius_km is None:
        raise InvalidServiceArea("Give a centre and a radius in km, or a polygon")
    if not (0 < area.radius_km <= MAX_RADIUS_KM):
        raise InvalidServiceArea(f"radiusKm must be greater than 0 and at most {MAX_RADIUS_KM:g}",
                                 field="serviceArea.radiusKm")
    return {"service_area": None, "service_radius_km": round(float(area.radius_km), 2),
            "service_point": area.center.ewkt()}


async def save_step(
    session: AsyncSession, user_id: int, step: str, *, business: BusinessDetails | None = None,
    categories: list[str] | None = None, area: ServiceArea | None = None,
) -> ProviderApplication:
    """Save one step of the caller's open application (a new draft when there is none) and record it
    in ``progress``. ``step``: business | categories | service_area | documents (the last only marks
    the documents step done; the files come through ``add_document``). Raises ``Forbidden``
    (operators), ``AlreadyAProvider``, ``ApplicationLocked``, ``MissingField`` (the step's data is
    absent), and the checks' errors. Bad input changes nothing (the caller rolls back)."""
    if step not in STEPS:
        raise DomainError(f"step is one of {', '.join(STEPS)}", field="step")
    user = await _user(session, user_id)
    app = await _open_application(session, user, create=True)
    _editable(app)
    if step == "business":
        if business is None:
            raise MissingField("The business step needs `business`", field="business")
        d = check_business(business)
        app.business_name, app.phone, app.address = d.business_name, d.phone, d.address
        app.city, app.country_code, app.registration_number = d.city, d.country_code, d.registration_number
    elif step == "categories":
        if categories is None:
            raise MissingField("The categories step needs `categories`", field="categories")
        app.categories = check_categories(categories)
    elif step == "service_area":
        if area is None:
            raise MissingField("The service_area step needs `serviceArea`", field="serviceArea")
        for name, value in (await _area_values(session, area)).items():
            setattr(app, name, value)
    _mark_step(app, step)
    await session.flush()
    return app


def check_file(data: bytes, declared_type: str | None, *, max_bytes: int) -> CheckedFile:
    """Accept ``data`` when it is at most ``max_bytes`` and starts with the magic bytes of PDF,
    JPEG or PNG; a ``declared_type`` naming one of those must name the detected one (other declared
    types, e.g. application/octet-stream, are ignored). Raises ``FileTooLarge``, ``UnsupportedFileType``."""
    if len(data) > max_bytes:
        raise FileTooLarge(f"The file is larger than {max_bytes} bytes")
    detected = next((t for magic, t in SIGNATURES if data.startswith(magic)), None)
    if detected is None:
        raise UnsupportedFileType("Only PDF, JPEG and PNG files are accepted (checked from the file's contents)")
    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared in ALLOWED_CONTENT_TYPES and declared != detected:
        raise UnsupportedFileType(f"The file says it is {declared} but its contents are {detected}")
    return CheckedFile(data=data, content_type=detected, sha256=hashlib.sha256(data).hexdigest())


async def application_for_upload(session: AsyncSession, user_id: int, application_id: int | None) -> ProviderApplication:
    """The caller's open, editable application (created as a draft when none and no id is given).
    Raises ``NotFound`` (an id that is not the caller's open application), ``ApplicationLocked``,
    ``Forbidden``, ``AlreadyAProvider``."""
    user = await _user(session, user_id)
    app = await _open_application(session, user, create=application_id is None)
    if application_id is not None and app.id != application_id:
        raise NotFound("No such application of yours", field="applicationId")
    _editable(app)
    return app


def new_storage_key(application_id: int) -> str:
    """Where a new document's bytes go: random, and holding no personal data."""
    return f"applications/{application_id}/{uuid.uuid4().hex}"


def seal_document(storage_key: str, data: bytes) -> bytes:
    """The bytes to store for a document: ``data`` encrypted at rest (AES-256-GCM under the current
    key of settings.encryption_keys, bound to ``storage_key``: models/crypto.py ``encrypt_bytes``),
    whatever the backend (S3 adds its own SSE-S3 underneath). ID cards are the most sensitive files
    Odim holds; the SHA-256 on the row stays that of the plain file the applicant sent."""
    return encrypt_bytes(data, storage_key)


def open_document(storage_key: str, stored: bytes) -> bytes:
    """The plain bytes of a stored document. Files stored before encryption at rest (no seal) are
    returned as they are. Raises ``DecryptionError`` (unknown key id, or the file was tampered with
    or moved to another key)."""
    return decrypt_bytes(stored, storage_key) if is_encrypted_bytes(stored) else stored


async def add_document(
    session: AsyncSession, app: ProviderApplication, *, kind: str, filename: str, checked: CheckedFile,
    storage_key: str,
) -> ApplicationDocument:
    """Insert the metadata row of a stored document (the caller stored the bytes, sealed by
    ``seal_document`` under the current key, at ``storage_key`` first). Raises ``DomainError`` INVALID_DOCUMENT_KIND."""
    if kind not in DOCUMENT_KINDS:
        raise InvalidDocumentKind(f"kind is one of {', '.join(DOCUMENT_KINDS)}", field="kind")
    doc = ApplicationDocument(
        application_id=app.id, kind=kind, original_filename=(filename or "document")[-255:],
        content_type=checked.content_type, size_bytes=len(checked.data), sha256=checked.sha256,
        storage_key=storage_key, file_key_id=current_key_id(),
    )
    session.add(doc)
    app.progress = {**(app.progress or {}), "lastStep": "documents"}
    await session.flush()
    return doc


async def remove_document(session: AsyncSession, user_id: int, document_id: int) -> tuple[ProviderApplication, str]:
    """Delete one document of the caller's editable application; returns the application and the
    storage key to delete AFTER commit. Raises ``NotFound`` (not the caller's), ``ApplicationLocked``."""
    row = (await session.execute(
        select(ApplicationDocument, ProviderApplication)
        .join(ProviderApplication, ProviderApplication.id == ApplicationDocument.application_id)
        .where(ApplicationDocument.id == document_id, ProviderApplication.user_id == user_id)
        .with_for_update(of=ProviderApplication)
    )).one_or_none()
    if row is None:
        raise NotFound("No such document of yours", field="documentId")
    doc, app = row
    _editable(app)
    key = doc.storage_key
    await session.delete(doc)
    await session.flush()
    return app, key


async def submit(session: AsyncSession, user_id: int, application_id: int | None) -> ProviderApplication:
    """Submit the caller's open application for review (status -> submitted, queued now).
    Raises ``NotFound``, ``ApplicationLocked`` (already submitted or decided), ``ApplicationIncomplete``."""
    user = await _user(session, user_id)
    app = await _open_application(session, user, create=False)
    if application_id is not None and app.id != application_id:
        raise NotFound("No such application of yours", field="applicationId")
    _editable(app)
    problems: list[DomainError] = []
    if not (app.business_name and app.phone and app.address and app.city and app.country_code):
        problems.append(DomainError("Business details are missing", field="business", code=ProvidersErrorCode.MISSING_BUSINESS_DETAILS))
    if not app.categories:
        problems.append(DomainError("Choose at least one category", field="categories", code=ProvidersErrorCode.MISSING_CATEGORIES))
    if app.service_point is None:
        problems.append(DomainError("The service area is missing", field="serviceArea", code=ProvidersErrorCode.MISSING_SERVICE_AREA))
    uploaded = (await session.execute(
        select(ApplicationDocument.kind, ApplicationDocument.uploaded_at)
        .where(ApplicationDocument.application_id == app.id)
    )).all()
    kinds = {k for k, _ in uploaded}
    # Documents an admin asked for must be new: uploaded after that request.
    fresh = {k for k, at in uploaded if app.decided_at is None or at > app.decided_at}
    for kind in REQUIRED_DOCUMENTS:
        if kind not in kinds:
            problems.append(DomainError(f"Upload your {DOCUMENT_LABELS[kind]}", field=f"documents.{kind}",
                                        code=ProvidersErrorCode.MISSING_DOCUMENT))
    for kind in app.requested_document_kinds or []:
        if kind in kinds and kind not in fresh:
            problems.append(DomainError(f"Upload the requested {DOCUMENT_LABELS[kind]}", field=f"documents.{kind}",
                                        code=ProvidersErrorCode.MISSING_DOCUMENT))
        elif kind not in kinds and kind not in REQUIRED_DOCUMENTS:
            problems.append(DomainError(f"Upload the requested {DOCUMENT_LABELS[kind]}", field=f"documents.{kind}",
                                        code=ProvidersErrorCode.MISSING_DOCUMENT))
    if problems:
        raise ApplicationIncomplete(problems)
    now = datetime.now(UTC)
    app.status, app.submitted_at, app.queued_at = "submitted", now, now
    _mark_step(app, "documents")
    app.progress = {**app.progress, "lastStep": "submitted"}
    await audit.record(session, action="provider_application.submitted", subject_type="ProviderApplication",
                       subject_id=app.id, details={"applicationId": app.id, "documents": len(kinds)})
    await session.flush()
    return app


# --- reading -------------------------------------------------------------------------------------

_GEO = (func.ST_AsGeoJSON(ProviderApplication.service_point), func.ST_AsGeoJSON(ProviderApplication.service_area))


def _view(app: ProviderApplication, point_json: str | None, area_json: str | None) -> ApplicationView:
    center = None
    polygon = None
    if point_json:
        lon, lat = json.loads(point_json)["coordinates"]
        center = (lat, lon)
    if area_json:
        polygon = [(lat, lon) for lon, lat in json.loads(area_json)["coordinates"][0]]
    return ApplicationView(application=app, center=center, polygon=polygon)


async def _with_documents(session: AsyncSession, views: list[ApplicationView]) -> list[ApplicationView]:
    if views:
        docs = (await session.scalars(
            select(ApplicationDocument)
            .where(ApplicationDocument.application_id.in_([v.application.id for v in views]))
            .order_by(ApplicationDocument.id)
        )).all()
        by_app: dict[int, list[ApplicationDocument]] = {}
        for d in docs:
            by_app.setdefault(d.application_id, []).append(d)
        for v in views:
            v.documents = by_app.get(v.application.id, [])
    return views


async def application_views(session: AsyncSession, application_ids: list[int]) -> dict[int, ApplicationView]:
    """``{id: ApplicationView}`` (documents included) in two statements; unknown ids are absent."""
    if not application_ids:
        return {}
    rows = (await session.execute(
        select(ProviderApplication, *_GEO).where(ProviderApplication.id.in_(list(application_ids)))
    )).all()
    views = await _with_documents(session, [_view(*r) for r in rows])
    return {v.application.id: v for v in views}


async def my_application(session: AsyncSession, user_id: int) -> ApplicationView | None:
    """The account's newest application with documents (two statements), or None."""
    row = (await session.execute(
        select(ProviderApplication, *_GEO).where(ProviderApplication.user_id == user_id)
        .order_by(ProviderApplication.id.desc()).limit(1)
    )).one_or_none()
    if row is None:
        return None
    return (await _with_documents(session, [_view(*row)]))[0]


def encode_cursor(app: ProviderApplication) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_KIND}:{app.queued_at.isoformat()}:{app.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Raises ``pagination.InvalidCursor``."""
    try:
        kind, _, rest = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        at, _, ident = rest.rpartition(":")
        if kind != CURSOR_KIND:
            raise ValueError(kind)
        return pagination.timestamp(at), pagination.row_id(ident)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise pagination.InvalidCursor("Malformed cursor") from exc


async def application_queue(
    session: AsyncSession, *, status: str, first: int, after: str | None,
) -> tuple[list[ApplicationView], bool]:
    """Applications of one ``status``, oldest queued first (``queued_at``: the last submission, or
    creation for drafts; ties by id), keyset-paginated; documents included. Returns ``(views,
    has_next)`` in two statements (index ix_provider_applications_status_queued). Raises
    ``InvalidCursor``, ``DomainError`` (unknown status)."""
    if status not in APPLICATION_STATUSES:
        raise DomainError(f"status is one of {', '.join(APPLICATION_STATUSES)}", field="status")
    query = select(ProviderApplication, *_GEO).where(ProviderApplication.status == status)
    if after:
        at, ident = decode_cursor(after)
        query = query.where(tuple_(ProviderApplication.queued_at, ProviderApplication.id) > tuple_(at, ident))
    rows = (await session.execute(
        query.order_by(ProviderApplication.queued_at, ProviderApplication.id).limit(first + 1)
    )).all()
    views = await _with_documents(session, [_view(*r) for r in rows[:first]])
    return views, len(rows) > first


async def document_for_admin(session: AsyncSession, document_id: int) -> ApplicationDocument:
    """Raises ``NotFound``."""
    doc = await session.get(ApplicationDocument, document_id)
    if doc is None:
        raise NotFound("No such document", field="documentId")
    return doc


# --- admin decisions -----------------------------------------------------------------------------

async def _for_decision(session: AsyncSession, application_id: int, allowed: tuple[str, ...]) -> tuple[ProviderApplication, User]:
    """The application and its applicant, locked in the order ``_open_application`` takes them
    (the account's row, then the application), so a decision racing the applicant's save waits
    instead of deadlocking."""
    user_id = await session.scalar(select(ProviderApplication.user_id).where(ProviderApplication.id == application_id))
    if user_id is None:
        raise NotFound("No such application", field="applicationId")
    await session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
    app = await session.scalar(
        select(ProviderApplication).where(ProviderApplication.id == application_id).with_for_update(key_share=True)
    )
    if app.status not in allowed:
        raise InvalidTransition(f"A {app.status} application cannot take this decision", field="applicationId")
    return app, await _user(session, app.user_id)


def _decided(app: ProviderApplication, admin_id: int, status: str) -> None:
    app.status, app.decided_at, app.decided_by = status, datetime.now(UTC), admin_id


async def approve(session: AsyncSession, admin_id: int, application_id: int) -> tuple[ProviderApplication, Provider]:
    """Approve a submitted application: create or update the applicant's Provider row (verified,
    location = service point, categories, display name, phone, city, country, service area), make the
    account a provider, audit (``provider_application.approved``) and email the applicant.
    Raises ``NotFound``, ``InvalidTransition`` (not submitted)."""
    app, user = await _for_decision(session, application_id, ("submitted",))
    point, area = (await session.execute(
        select(func.ST_AsEWKT(ProviderApplication.service_point), func.ST_AsEWKT(ProviderApplication.service_area))
        .where(ProviderApplication.id == app.id)
    )).one()
    provider = await provider_for_user(session, user.id)
    if provider is None:
        provider = Provider(user_id=user.id, display_name=app.business_name, location=point)
        session.add(provider)
    provider.display_name = app.business_name
    provider.phone, provider.city, provider.country_code = app.phone, app.city, app.country_code
    provider.categories = list(app.categories)
    provider.location = point
    provider.service_radius_km = app.service_radius_km
    provider.service_area = area
    provider.verified = True
    await session.flush()
    if user.role != "admin":
        user.role = "provider"
    _decided(app, admin_id, "approved")
    app.provider_id = provider.id
    app.decision_reason, app.requested_document_kinds = None, []
    await audit.record(session, action="provider_application.approved", subject_type="ProviderApplication",
                       subject_id=app.id, details={"decision": "approved", "applicationId": app.id,
                                                   "providerId": provider.id, "userId": user.id})
    await notification.queue_email(
        session, dedupe_key=f"provider_application:{app.id}:approved", kind="provider_application", to=user.email,
        template="application_approved", context={"name": user.full_name, "business_name": app.business_name},
        user_id=user.id,
    )
    await session.flush()
    return app, provider


async def reject(session: AsyncSession, admin_id: int, application_id: int, reason: str) -> ProviderApplication:
    """Reject a submitted (or waiting-for-documents) application with a reason (1-2000 characters,
    sent to the applicant); audit and email. Raises ``ReasonRequired``, ``NotFound``, ``InvalidTransition``."""
    cleaned = (reason or "").strip()
    if not cleaned:
        raise ReasonRequired("Say why the application is rejected (the applicant reads it)")
    if len(cleaned) > MAX_REASON_CHARS:
        raise DomainError(f"reason is at most {MAX_REASON_CHARS} characters", field="reason")
    app, user = await _for_decision(session, application_id, ("submitted", "more_documents_requested"))
    _decided(app, admin_id, "rejected")
    app.decision_reason = cleaned
    await audit.record(session, action="provider_application.rejected", subject_type="ProviderApplication",
                       subject_id=app.id, details={"decision": "rejected", "applicationId": app.id, "userId": user.id})
    await notification.queue_email(
        session, dedupe_key=f"provider_application:{app.id}:rejected", kind="provider_application", to=user.email,
        template="application_rejected",
        context={"name": user.full_name, "business_name": app.business_name, "reason": cleaned}, user_id=user.id,
    )
    await session.flush()
    return app


async def request_documents(
    session: AsyncSession, admin_id: int, application_id: int, kinds: list[str], message: str,
) -> ProviderApplication:
    """Ask the applicant of a submitted application for more documents (``kinds``: 1+ of
    id_card | business_registration | certificate; ``message`` 1-2000 characters, sent to them):
    status -> more_documents_requested (the applicant can edit and submit again); audit and email.
    Raises ``InvalidDocumentKind``, ``ReasonRequired`` (field message), ``NotFound``, ``InvalidTransition``."""
    wanted = list(dict.fromkeys(kinds))
    if not wanted or any(k not in DOCUMENT_KINDS for k in wanted):
        raise InvalidDocumentKind(f"kinds: one or more of {', '.join(DOCUMENT_KINDS)}")
    cleaned = (message or "").strip()
    if not cleaned:
        raise ReasonRequired("Tell the applicant what is needed", field="message")
    if len(cleaned) > MAX_REASON_CHARS:
        raise DomainError(f"message is at most {MAX_REASON_CHARS} characters", field="message")
    app, user = await _for_decision(session, application_id, ("submitted",))
    _decided(app, admin_id, "more_documents_requested")
    app.decision_reason, app.requested_document_kinds = cleaned, wanted
    await audit.record(session, action="provider_application.documents_requested", subject_type="ProviderApplication",
                       subject_id=app.id, details={"decision": "more_documents_requested", "applicationId": app.id,
                                                   "kinds": wanted, "userId": user.id})
    await notification.queue_email(
        session, dedupe_key=f"provider_application:{app.id}:documents:{app.decided_at.isoformat()}",
        kind="provider_application", to=user.email, template="application_documents_requested",
        context={"name": user.full_name, "business_name": app.business_name,
                 "kinds": [DOCUMENT_LABELS[k] for k in wanted], "message": cleaned},
        user_id=user.id,
    )
    await session.flush()
    return app

