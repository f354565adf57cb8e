"""The service catalogue: services, their tiers, prices per currency (minor units) and features."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, pk


class Service(Base):
    __tablename__ = "services"

    id: Mapped[int] = pk()
    slug: Mapped[str] = mapped_column(String(80), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    category: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")

    tiers: Mapped[list["ServiceTier"]] = relationship(
        back_populates="service", order_by="ServiceTier.position", lazy="raise"
    )


class ServiceTier(Base):
    __tablename__ = "service_tiers"

    id: Mapped[int] = pk()
    service_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("services.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    features: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")

    service: Mapped[Service] = relationship(back_populates="tiers", lazy="raise")
    prices: Mapped[list["TierPrice"]] = relationship(order_by="TierPrice.currency", lazy="raise")


class TierPrice(Base):
    """Price of a tier in one ISO 4217 currency, in minor units (XAF has none: 5000 means 5,000 XAF)."""

    __tablename__ = "tier_prices"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
    )

    tier_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("service_tiers.id", ondelete="CASCADE"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
