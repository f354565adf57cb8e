"""Reviews and strikes (migration 0011).

A review is about ONE subject: a catalogue order (``service_request_id``) or a visit (``booking_id``),
never both (CHECK ``one_subject``). Each side reviews a subject at most once (unique
``(service_request_id, author_role)`` and ``(booking_id, author_role)``): the customer rates the
provider, the provider rates the customer. Reviews are blind: ``published_at`` stays null until both
sides reviewed the subject or ``window_closes_at`` (completion + settings.review_window_days) passed
(domain/reviews/review.py). Only published customer reviews count in the provider's rating aggregates.

A strike is an admin's record of a serious complaint against a provider; the second one suspends it
(domain/reviews/review.py). Strikes are never deleted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk

AUTHOR_ROLES = ("customer", "provider")


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        CheckConstraint("author_role IN ('customer', 'provider')", name="author_role"),
        CheckConstraint("(service_request_id IS NULL) <> (booking_id IS NULL)", name="one_subject"),
        UniqueConstraint("service_request_id", "author_role"),
        UniqueConstraint("booking_id", "author_role"),
        # Provider.reviews: a provider's published customer reviews, newest first (keyset).
        Index("ix_reviews_provider_published", "provider_id", text("published_at DESC"), text("id DESC"),
              postgresql_where=text("published_at IS NOT NULL AND author_role = 'customer'")),
        # The publisher: unpublished reviews whose window closed.
        Index("ix_reviews_unpublished_due", "window_closes_at", postgresql_where=text("published_at IS NULL")),
        Index("ix_reviews_author", "author_user_id", "id"),
        Index("ix_reviews_customer", "customer_user_id", "id"),
    )

    id: Mapped[int] = pk()
    service_request_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("service_requests.id"))
    booking_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("bookings.id"))
    author_role: Mapped[str] = mapped_column(Text, nullable=False)  # customer | provider
    author_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("providers.id"), nullable=False)
    # The subject's customer account (the one reviewed by a provider review); null for a guest order.
    customer_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    rating: Mapped[int] = mapped_column(SmallInteger, nullable=False)  # 1-5 stars
    text: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    window_closes_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = created_at()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProviderStrike(Base):
    """One strike against a provider, recorded by an admin for a serious complaint; optionally
    referencing the order, visit or dispute the complaint is about (at most one)."""

    __tablename__ = "provider_strikes"
    __table_args__ = (
        CheckConstraint(
            "num_nonnulls(service_request_id, booking_id, dispute_id) <= 1", name="one_reference"
        ),
    )

    id: Mapped[int] = pk()
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("providers.id"), nullable=False, index=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    service_request_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("service_requests.id"))
    booking_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("bookings.id"))
    dispute_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("disputes.id"))
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
