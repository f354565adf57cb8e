"""Provider onboarding: an account's application to become a provider, and the documents
uploaded with it (the files themselves live in gateways/storage.py, under ``storage_key``).

Application lifecycle (``provider_applications.status``)::

    draft --submit--> submitted --approve--> approved   (a verified Provider row; the account's role -> provider)
      ^                  |  \\--reject (reason)--> rejected
      |                  \\--request documents--> more_documents_requested --submit--> submitted
      |                                              \\--reject--> rejected
      \\-- a rejected applicant may start a new draft

At most one *open* application (draft, submitted, more_documents_requested) per account: a partial
unique index. Personal data (phone, address, original file names) is encrypted at rest.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from geoalchemy2 import Geography
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk, sql_in, updated_at
from models.crypto import EncryptedText


class ApplicationStatus(StrEnum):
    """Where a provider application stands."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    MORE_DOCUMENTS_REQUESTED = "more_documents_requested"
    APPROVED = "approved"
    REJECTED = "rejected"


APPLICATION_STATUSES = tuple(ApplicationStatus)
OPEN_STATUSES = (ApplicationStatus.DRAFT, ApplicationStatus.SUBMITTED, ApplicationStatus.MORE_DOCUMENTS_REQUESTED)
DOCUMENT_KINDS = ("id_card", "business_registration", "certificate")


class ProviderApplication(Base):
    __tablename__ = "provider_applications"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_in(ApplicationStatus)}", name="status"),
        CheckConstraint("service_radius_km IS NULL OR (service_radius_km > 0 AND service_radius_km <= 100)",
                        name="service_radius_km"),
        Index("uq_provider_applications_open_user", "user_id", unique=True,
              postgresql_where=text(f"status IN {sql_in(OPEN_STATUSES)}")),
        # The admin queue: one status, oldest first (keyset on queued_at, id).
        Index("ix_provider_applications_status_queued", "status", "queued_at", "id"),
        Index("ix_provider_applications_user_id", "user_id", "id"),
    )

    id: Mapped[int] = pk()
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="draft", server_default="draft")
    # --- business details
    business_name: Mapped[str | None] = mapped_column(String(200))
    registration_number: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(EncryptedText("provider_applications.phone"))  # E.164, encrypted
    address: Mapped[str | None] = mapped_column(EncryptedText("provider_applications.address"))  # encrypted
    city: Mapped[str | None] = mapped_column(String(120))
    country_code: Mapped[str | None] = mapped_column(String(2))
    categories: Mapped[list[str]] = mapped_column(ARRAY(String(40)), nullable=False, server_default="{}")
    # --- service area: a point + radius, or a polygon (then service_point is its centroid)
    service_point = mapped_column(Geography("POINT", srid=4326, spatial_index=False))
    service_radius_km: Mapped[float | None] = mapped_column(Numeric(6, 2, asdecimal=False))
    service_area = mapped_column(Geography("POLYGON", srid=4326, spatial_index=False))
    # {"completedSteps": ["business", ...], "lastStep": "categories"}: resume on any device.
    progress: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    # --- decision
    decision_reason: Mapped[str | None] = mapped_column(Text)  # rejection reason or documents-request message
    requested_document_kinds: Mapped[list[str]] = mapped_column(ARRAY(String(40)), nullable=False,
                                                                server_default="{}")
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Queue order: the last submission (created_at while a draft).
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    provider_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("providers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class ApplicationDocument(Base):
    __tablename__ = "application_documents"
    __table_args__ = (
        CheckConstraint(f"kind IN {DOCUMENT_KINDS}", name="kind"),
        CheckConstraint("size_bytes >= 0", name="size_bytes"),
        Index("ix_application_documents_application_id", "application_id", "id"),
    )

    id: Mapped[int] = pk()
    application_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("provider_applications.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    original_filename: Mapped[str] = mapped_column(EncryptedText("application_documents.original_filename"),
                                                   nullable=False)  # may name the person: encrypted
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)  # detected from the bytes
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)  # hex of the plain file's bytes
    storage_key: Mapped[str] = mapped_column(String(300), nullable=False, unique=True)
    # The encryption key id the stored file is sealed under (models/crypto.py encrypt_bytes); NULL:
    # stored in plain before encryption at rest (0015). `odim keys rotate` re-seals what is not current.
    file_key_id: Mapped[str | None] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = created_at()
