"""Bookings of a provider's time: availability plans, tickets, visits (bookings), their history,
substitution offers and escalations.

Double booking is impossible by construction: ``bookings`` carries an exclusion constraint
``EXCLUDE USING gist (provider_id WITH =, during WITH &&) WHERE (status IN LIVE_STATUSES)``
(migration 0003, btree_gist), where ``during`` is ``[starts_at, blocked_until)`` and
``blocked_until`` is the slot's end plus the provider's buffer.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from geoalchemy2 import Geography
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSTZRANGE, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk, sql_in, updated_at
from models.crypto import EncryptedText


class BookingStatus(StrEnum):
    """Where a visit is in the booking state machine (domain/bookings/booking.py)."""

    HELD = "held"
    PAYMENT_EXPIRED = "payment_expired"
    PAID = "paid"
    DECLINED = "declined"
    EXPIRED = "expired"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    ARRIVED = "arrived"
    IN_PROGRESS = "in_progress"
    NEEDS_FOLLOW_UP = "needs_follow_up"
    COMPLETED = "completed"
    CANCELLED_BY_CUSTOMER = "cancelled_by_customer"
    CANCELLED_BY_PROVIDER = "cancelled_by_provider"
    CANCELLED_BY_ADMIN = "cancelled_by_admin"
    CANNOT_MAKE_IT = "cannot_make_it"
    CUSTOMER_NO_SHOW = "customer_no_show"
    DISPUTED = "disputed"
    RESOLVED = "resolved"
    REVIEWED = "reviewed"


BOOKING_STATUSES = tuple(BookingStatus)
# The statuses that occupy the provider's time: only these take part in the exclusion constraint.
LIVE_STATUSES = (BookingStatus.HELD, BookingStatus.PAID, BookingStatus.ACCEPTED, BookingStatus.EN_ROUTE,
                 BookingStatus.ARRIVED, BookingStatus.IN_PROGRESS)
class TicketStatus(StrEnum):
    """A ticket: open, scheduled (a visit booked), closed or cancelled."""

    OPEN = "open"
    SCHEDULED = "scheduled"
    CLOSED = "closed"
    CANCELLED = "cancelled"


TICKET_STATUSES = tuple(TicketStatus)
class SubstitutionOfferStatus(StrEnum):
    """A substitution offer: offered, accepted, lost (another took it) or expired."""

    OFFERED = "offered"
    ACCEPTED = "accepted"
    LOST = "lost"
    EXPIRED = "expired"


OFFER_STATUSES = tuple(SubstitutionOfferStatus)
ESCALATION_KINDS = ("ticket_unassigned", "substitution_unanswered", "customer_no_show", "model_unlisted")
ACTOR_TYPES = ("customer", "provider", "admin", "system")


class ProviderBookingSettings(Base):
    """A provider's booking rules (its time zone is ``providers.time_zone``); defaults from settings."""

    __tablename__ = "provider_booking_settings"
    __table_args__ = (
        CheckConstraint("min_notice_minutes >= 0", name="notice_non_negative"),
        CheckConstraint("buffer_minutes BETWEEN 0 AND 1440", name="buffer_range"),
        CheckConstraint("horizon_days BETWEEN 1 AND 366", name="horizon_range"),
    )

    provider_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True
    )
    min_notice_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    buffer_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    horizon_days: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = updated_at()


class ProviderService(Base):
    """A catalogue service a provider takes bookings for, with its slot length (minutes)."""

    __tablename__ = "provider_services"
    __table_args__ = (CheckConstraint("slot_minutes BETWEEN 5 AND 1440", name="slot_range"),)

    provider_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True
    )
    service_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("services.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    slot_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")


class AvailabilityRule(Base):
    """One range of the weekly plan, in the provider's local time: ``weekday`` 0 = Monday,
    ``[start_minute, end_minute)`` minutes after local midnight (1440 = the end of the day)."""

    __tablename__ = "availability_rules"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute", name="range_valid"),
    )

    id: Mapped[int] = pk()
    provider_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("providers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    weekday: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    start_minute: Mapped[int] = mapped_column(Integer, nullable=False)
    end_minute: Mapped[int] = mapped_column(Integer, nullable=False)


class AvailabilityException(Base):
    """The ranges of one concrete local date, replacing that weekday's plan. A row with no range
    (both minutes NULL) is a day off."""

    __tablename__ = "availability_exceptions"
    __table_args__ = (
        CheckConstraint(
            "(start_minute IS NULL AND end_minute IS NULL) OR "
            "(start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute)",
            name="range_valid",
        ),
        Index("ix_availability_exceptions_provider_date", "provider_id", "on_date"),
    )

    id: Mapped[int] = pk()
    provider_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("providers.id", ondelete="CASCADE"), nullable=False
    )
    on_date: Mapped[date] = mapped_column(Date, nullable=False)
    start_minute: Mapped[int | None] = mapped_column(Integer)
    end_minute: Mapped[int | None] = mapped_column(Integer)


class ApplianceModel(Base):
    """The list of known appliance models per category; a ticket naming another is flagged."""

    __tablename__ = "appliance_models"
    __table_args__ = (
        Index("uq_appliance_models_name", "category", text("lower(brand)"), text("lower(model)"), unique=True),
    )

    id: Mapped[int] = pk()
    category: Mapped[str] = mapped_column(String(40), nullable=False)
    brand: Mapped[str] = mapped_column(String(80), nullable=False)
    model: Mapped[str] = mapped_column(String(120), nullable=False)


class Ticket(Base):
    """The customer's job. Its visits are bookings; ``preferred_windows`` is a JSON list of
    ``{"start": iso8601, "end": iso8601}`` instants in UTC."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_in(TicketStatus)}", name="status"),
        Index("ix_tickets_open_created", "created_at", postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = pk()
    reference: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    customer_user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), nullable=False, index=True)
    category: Mapped[str] = mapped_column(String(40), nullable=False)
    service_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("services.id"))
    appliance: Mapped[str] = mapped_column(String(120), nullable=False)
    brand: Mapped[str | None] = mapped_column(String(80))
    model: Mapped[str | None] = mapped_column(String(120))
    model_unlisted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    preferred_windows: Mapped[list] = mapped_column(JSONB, nullable=False, server_default="[]")
    urgent: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    location = mapped_column(Geography("POINT", srid=4326, spatial_index=False), nullable=False)
    address: Mapped[str] = mapped_column(EncryptedText("tickets.address"), nullable=False, default="")  # encrypted at rest
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    flagged_reason: Mapped[str | None] = mapped_column(Text)
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class Booking(Base):
    """A visit: one slot of one provider's time for one service. Money goes through its order
    (``service_request_id``, created at checkout; follow-up visits share their first visit's order)."""

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_in(BookingStatus)}", name="status"),
        CheckConstraint("starts_at < ends_at AND ends_at <= blocked_until", name="times_ordered"),
        CheckConstraint("review_rating IS NULL OR review_rating BETWEEN 1 AND 5", name="rating_range"),
        ExcludeConstraint(
            ("provider_id", "="), ("during", "&&"),
            name="bookings_no_overlap", using="gist",
            where=text(f"status IN {sql_in(LIVE_STATUSES)}"),
        ),
        Index("ix_bookings_hold_expiry", "hold_expires_at", postgresql_where=text("status = 'held'")),
        Index("ix_bookings_response_due", "response_due_at", postgresql_where=text("status = 'paid'")),
        Index("ix_bookings_in_progress_end", "ends_at", postgresql_where=text("status = 'in_progress'")),
        Index("ix_bookings_provider_during", "provider_id", "starts_at"),
        UniqueConstraint("customer_user_id", "idempotency_key"),
    )

    id: Mapped[int] = pk()
    reference: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("providers.id"), nullable=False)
    service_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("services.id"), nullable=False)
    tier_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("service_tiers.id"), nullable=False)
    customer_user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), nullable=False, index=True)
    ticket_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tickets.id"), index=True)
    service_request_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("service_requests.id"), index=True)
    parent_booking_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("bookings.id"))
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    blocked_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    during = mapped_column(
        TSTZRANGE, Computed("tstzrange(starts_at, blocked_until, '[)')", persisted=True), nullable=False
    )
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False)  # the provider's, at booking time
    hold_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    response_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    arrived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    substitution_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    customer_note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    review_rating: Mapped[int | None] = mapped_column(SmallInteger)
    review_comment: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class BookingStatusChange(Base):
    """One row per booking transition, written in the same transaction (never updated)."""

    __tablename__ = "booking_status_history"
    __table_args__ = (CheckConstraint(f"actor_type IN {sql_in(ACTOR_TYPES)}", name="actor_type"),)

    id: Mapped[int] = pk()
    booking_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bookings.id"), nullable=False, index=True)
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24), nullable=False)
    actor_type: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = created_at()


class SubstitutionOffer(Base):
    """A visit its provider cannot make, offered to another provider; the first to accept wins."""

    __tablename__ = "substitution_offers"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_in(SubstitutionOfferStatus)}", name="status"),
        UniqueConstraint("booking_id", "provider_id"),
    )

    id: Mapped[int] = pk()
    booking_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bookings.id"), nullable=False, index=True)
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("providers.id"), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="offered")
    created_at: Mapped[datetime] = created_at()
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Escalation(Base):
    """Something an admin must look at (a ticket nobody took, a visit nobody substitutes, a customer
    not at home, an unlisted appliance model). One open row per subject and kind."""

    __tablename__ = "escalations"
    __table_args__ = (
        CheckConstraint(f"kind IN {sql_in(ESCALATION_KINDS)}", name="kind"),
        Index("uq_escalations_open", "kind", "subject", unique=True, postgresql_where=text("resolved_at IS NULL")),
    )

    id: Mapped[int] = pk()
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    subject: Mapped[str] = mapped_column(String(40), nullable=False)  # "ticket:12" or "booking:34"
    ticket_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tickets.id"), index=True)
    booking_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("bookings.id"), index=True)
    note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = created_at()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
