"""Provider onboarding in GraphQL: the types of the applicant's ``myProviderApplication``,
``saveProviderApplication`` (one step at a time), ``uploadApplicationDocument`` (GraphQL multipart
request spec: the ``Upload`` scalar), ``removeApplicationDocument``, ``submitProviderApplication``;
the admin's ``providerApplications`` queue and its decisions ``approveProviderApplication``,
``rejectProviderApplication``, ``requestApplicationDocuments``. Admin mutations are audited as
``admin.<mutationName>`` by schema/audit.py; the domain adds ``provider_application.<decision>`` rows.
The root fields are in schema/providers/root.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay
from strawberry.file_uploads import Upload

from domain.identity.errors import IdentityErrorCode
from domain.providers import onboarding as onb
from domain.providers.errors import ProvidersErrorCode
from domain.shared.errors import CommonErrorCode
from models import ApplicationDocument as DocumentModel
from resolvers.ids import encode_id
from resolvers.providers import onboarding as onb_resolvers
from schema.shared.common import GeoPoint, GeoPointInput, coded_errors, error_code_enum


@strawberry.enum(description="Where an application stands.")
class ApplicationStatus(Enum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    MORE_DOCUMENTS_REQUESTED = "more_documents_requested"
    APPROVED = "approved"
    REJECTED = "rejected"


@strawberry.enum(description="The steps of an application, in order.")
class ApplicationStep(Enum):
    BUSINESS = "business"
    CATEGORIES = "categories"
    SERVICE_AREA = "service_area"
    DOCUMENTS = "documents"


@strawberry.enum(description="What an uploaded document is.")
class ApplicationDocumentKind(Enum):
    ID_CARD = "id_card"
    BUSINESS_REGISTRATION = "business_registration"
    CERTIFICATE = "certificate"


ProviderApplicationErrorCode = error_code_enum("ProviderApplicationErrorCode", [
    CommonErrorCode.NOT_FOUND, CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
    IdentityErrorCode.INVALID_PHONE, ProvidersErrorCode.INVALID_LOCATION, ProvidersErrorCode.MISSING_FIELD,
    ProvidersErrorCode.INVALID_CATEGORY, ProvidersErrorCode.INVALID_SERVICE_AREA,
    ProvidersErrorCode.INVALID_DOCUMENT_KIND, ProvidersErrorCode.UNSUPPORTED_FILE_TYPE,
    ProvidersErrorCode.FILE_TOO_LARGE, CommonErrorCode.STORAGE_UNAVAILABLE,
    ProvidersErrorCode.ALREADY_A_PROVIDER, ProvidersErrorCode.APPLICATION_LOCKED,
    ProvidersErrorCode.MISSING_BUSINESS_DETAILS, ProvidersErrorCode.MISSING_CATEGORIES,
    ProvidersErrorCode.MISSING_SERVICE_AREA, ProvidersErrorCode.MISSING_DOCUMENT,
    CommonErrorCode.INVALID_TRANSITION, ProvidersErrorCode.REASON_REQUIRED,
])


@strawberry.type
class ProviderApplicationError:
    field: str | None
    code: ProviderApplicationErrorCode
    message: str


def application_errors(errors) -> list[ProviderApplicationError]:
    return coded_errors(ProviderApplicationErrorCode, ProviderApplicationError, errors)


@strawberry.type(description="An uploaded document: its checked type, size and SHA-256. Admins download "
                 "the bytes from `downloadPath` (GET with their bearer token).")
class ApplicationDocument(relay.Node):
    id: relay.NodeID[int]
    kind: ApplicationDocumentKind
    filename: str = strawberry.field(description="The file name the applicant's device gave.")
    content_type: str = strawberry.field(description="Detected from the file's first bytes: application/pdf, "
                                         "image/jpeg or image/png.")
    size_bytes: int
    sha256: str = strawberry.field(description="Hex SHA-256 of the stored bytes.")
    uploaded_at: datetime
    download_path: str = strawberry.field(description="GET /admin/application-documents/{id} (admins only).")

    @classmethod
    def of(cls, d: DocumentModel) -> "ApplicationDocument":
        return cls(id=d.id, kind=ApplicationDocumentKind(d.kind), filename=d.original_filename,
                   content_type=d.content_type, size_bytes=d.size_bytes, sha256=d.sha256, uploaded_at=d.uploaded_at,
                   download_path=onb_resolvers.document_path(d.id))

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        return [None for _ in node_ids]  # reached through its application only


@strawberry.type(description="A centre and radius, or a polygon (then `center` is a point inside it).")
class ServiceAreaView:
    center: GeoPoint | None
    radius_km: float | None
    polygon: list[GeoPoint] | None = strawberry.field(description="Closed ring (first point repeated last).")


@strawberry.type(description="Which steps are done and where the applicant stopped (resume on any device).")
class ApplicationProgress:
    completed_steps: list[ApplicationStep]
    last_step: str | None = strawberry.field(description="business, categories, service_area, documents or submitted.")


@strawberry.type(description="An application to become a provider. Visible to its applicant and to admins.")
class ProviderApplication(relay.Node):
    id: relay.NodeID[int]
    status: ApplicationStatus
    applicant_id: strawberry.ID = strawberry.field(description="Global id of the applying User.")
    business_name: str | None
    registration_number: str | None
    phone: str | None
    address: str | None
    city: str | None
    country_code: str | None
    categories: list[str]
    service_area: ServiceAreaView | None
    progress: ApplicationProgress
    documents: list[ApplicationDocument]
    decision_reason: str | None = strawberry.field(description="Why it was rejected, or what documents are needed.")
    requested_document_kinds: list[ApplicationDocumentKind]
    submitted_at: datetime | None
    decided_at: datetime | None
    provider_id: strawberry.ID | None = strawberry.field(description="The Provider made on approval.")
    created_at: datetime

    @classmethod
    def of(cls, v: onb.ApplicationView) -> "ProviderApplication":
        a = v.application
        area = None
        if v.center is not None:
            area = ServiceAreaView(
                center=GeoPoint(latitude=v.center[0], longitude=v.center[1]), radius_km=a.service_radius_km,
                polygon=[GeoPoint(latitude=lat, longitude=lon) for lat, lon in v.polygon] if v.polygon else None,
            )
        progress = a.progress or {}
        return cls(
            id=a.id, status=ApplicationStatus(a.status), applicant_id=strawberry.ID(encode_id("User", a.user_id)),
            business_name=a.business_name, registration_number=a.registration_number, phone=a.phone,
            address=a.address, city=a.city, country_code=a.country_code, categories=list(a.categories or []),
            service_area=area,
            progress=ApplicationProgress(completed_steps=[ApplicationStep(s) for s in progress.get("completedSteps", [])],
                                         last_step=progress.get("lastStep")),
            documents=[ApplicationDocument.of(d) for d in v.documents], decision_reason=a.decision_reason,
            requested_document_kinds=[ApplicationDocumentKind(k) for k in a.requested_document_kinds or []],
            submitted_at=a.submitted_at, decided_at=a.decided_at,
            provider_id=strawberry.ID(encode_id("Provider", a.provider_id)) if a.provider_id else None,
            created_at=a.created_at,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await onb_resolvers.application_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(v) if v else None for v in found]


@strawberry.type
class ProviderApplicationEdge:
    cursor: str
    node: ProviderApplication


@strawberry.type
class ProviderApplicationConnection:
    edges: list[ProviderApplicationEdge]
    page_info: relay.PageInfo


# --- inputs and payloads ---------------------------------------------------------------------------

@strawberry.input(description="The business step.")
class ApplicationBusinessInput:
    business_name: str
    phone: str = strawberry.field(description="International form, e.g. +237 6 71 23 45 67 (or national, read "
                                  "in `countryCode`).")
    address: str
    city: str
    country_code: str = strawberry.field(description="ISO 3166-1 alpha-2, e.g. CM.")
    registration_number: str | None = None


@strawberry.input(description="Either `center` + `radiusKm` (0 < r <= 100) or `polygon` (3-200 corners).")
class ServiceAreaInput:
    center: GeoPointInput | None = None
    radius_km: float | None = None
    polygon: list[GeoPointInput] | None = None


@strawberry.input
class SaveProviderApplicationInput:
    step: ApplicationStep
    business: ApplicationBusinessInput | None = strawberry.field(default=None, description="For step BUSINESS.")
    categories: list[str] | None = strawberry.field(default=None, description="For step CATEGORIES: 1-20 slugs, "
                                                    "e.g. plumbing.")
    service_area: ServiceAreaInput | None = strawberry.field(default=None, description="For step SERVICE_AREA.")


@strawberry.type
class ProviderApplicationPayload:
    application: ProviderApplication | None
    errors: list[ProviderApplicationError]


@strawberry.input
class UploadApplicationDocumentInput:
    kind: ApplicationDocumentKind
    file: Upload = strawberry.field(description="PDF, JPEG or PNG (checked from its bytes), at most "
                                    "settings.upload_max_bytes (10 MiB by default).")
    application_id: strawberry.ID | None = strawberry.field(default=None, description="Your open application; "
                                                            "unset: it (a new draft when you have none).")


@strawberry.type
class UploadApplicationDocumentPayload:
    document: ApplicationDocument | None
    application: ProviderApplication | None
    errors: list[ProviderApplicationError]


@strawberry.input
class RemoveApplicationDocumentInput:
    document_id: strawberry.ID


@strawberry.input
class SubmitProviderApplicationInput:
    application_id: strawberry.ID | None = None


@strawberry.input
class ApproveProviderApplicationInput:
    application_id: strawberry.ID


@strawberry.input
class RejectProviderApplicationInput:
    application_id: strawberry.ID
    reason: str = strawberry.field(description="Required; emailed to the applicant.")


@strawberry.input
class RequestApplicationDocumentsInput:
    application_id: strawberry.ID
    kinds: list[ApplicationDocumentKind]
    message: str = strawberry.field(description="Required; emailed to the applicant.")


def application_payload(r) -> ProviderApplicationPayload:
    return ProviderApplicationPayload(application=ProviderApplication.of(r.application) if r.application else None,
                                      errors=application_errors(r.errors))
