"""Providers: who does the work, where, in which categories."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geography
from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, Numeric, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk, updated_at
from models.crypto import EncryptedText


class Provider(Base):
    __tablename__ = "providers"
    __table_args__ = (
        # Only live providers are searched: the index holds only them (docs/pitfalls.md, PostGIS).
        Index(
            "ix_providers_location_live",
            "location",
            postgresql_using="gist",
            postgresql_where=text("verified AND available AND NOT suspended"),
        ),
        # The admins' queue of flagged providers (flaggedProviders, oldest flag first; migration 0011).
        Index("ix_providers_flagged", "flagged_at", "id", postgresql_where=text("flagged_at IS NOT NULL")),
    )

    id: Mapped[int] = pk()
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), unique=True
    )
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    phone: Mapped[str | None] = mapped_column(EncryptedText("providers.phone"))  # encrypted at rest
    city: Mapped[str | None] = mapped_column(String(120))
    country_code: Mapped[str | None] = mapped_column(String(2))
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")
    location = mapped_column(Geography("POINT", srid=4326, spatial_index=False), nullable=False)
    categories: Mapped[list[str]] = mapped_column(ARRAY(String(40)), nullable=False, server_default="{}")
    rating: Mapped[float] = mapped_column(Numeric(3, 2, asdecimal=False), nullable=False, server_default="0")
    review_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    verified: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    available: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    suspended: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # Reviews and the two-strike policy (migration 0011; domain/reviews/review.py keeps them in step):
    # counts of published customer reviews per star (rating = their average, review_count their sum),
    # strikes recorded (never decreased by reinstatement unless the admin asks), the automatic flag
    # (average < rating_flag_threshold after rating_flag_min_jobs completed jobs) and the suspension.
    rating_1: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    rating_2: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    rating_3: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    rating_4: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    rating_5: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    strike_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    flagged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    flag_reason: Mapped[str | None] = mapped_column(String(300))
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    suspension_reason: Mapped[str | None] = mapped_column(String(2000))
    # Service area (from the approved application): a radius in km around ``location``,
    # or a polygon (then ``location`` is its centroid). Both null: unknown (older rows).
    service_radius_km: Mapped[float | None] = mapped_column(Numeric(6, 2, asdecimal=False))
    service_area = mapped_column(Geography("POLYGON", srid=4326, spatial_index=False), nullable=True)
    # Discovery (migration 0013): takes urgent jobs (set by the provider, setAcceptsUrgent), and
    # ranking statistics recomputed from the status histories by domain/providers/discovery.py refresh_stats.
    accepts_urgent: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    completed_jobs: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    cancelled_jobs: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")  # provider-caused
    median_response_seconds: Mapped[int | None] = mapped_column(Integer)  # null: never answered an offer
    stats_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
