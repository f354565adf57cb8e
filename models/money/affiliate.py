"""Affiliates and the purchases attributed to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk
from models.crypto import EncryptedText


class Affiliate(Base):
    __tablename__ = "affiliates"

    id: Mapped[int] = pk()
    code: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    email: Mapped[str | None] = mapped_column(EncryptedText("affiliates.email"))  # encrypted at rest
    commission_bps: Mapped[int] = mapped_column(Integer, nullable=False, server_default="500")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    # The account that may read this affiliate's dashboard (admins always can).
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)


class AffiliateAttribution(Base):
    """One paid purchase credited to one affiliate (unique per service request: recorded once)."""

    __tablename__ = "affiliate_attributions"

    id: Mapped[int] = pk()
    affiliate_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("affiliates.id"), nullable=False, index=True)
    service_request_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("service_requests.id"), nullable=False, unique=True
    )
    payment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payments.id"), nullable=False)
    base_amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    commission_bps: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = created_at()
