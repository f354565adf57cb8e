"""Providers: who does the work, where, in which categories."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geography
from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, Numeric, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk, updated_at
from models.crypto import EncryptedText


class Provider(Base):
    __tablename__ = "providers"
    __table_args__ = (
        # Only live providers are searched: the index holds only them (FIELD-NOTES.md, PostGIS).
        Index(
            "ix_providers_location_live",
            "location",
            postgresql_using="gist",
            postgresql_where=text("verified AND available AND NOT suspended"),
        ),
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
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
