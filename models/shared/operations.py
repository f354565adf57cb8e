"""Operational records for money: client idempotency keys, dead letters and reconciliation runs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, PrimaryKeyConstraint, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk, sql_in


class IdempotencyKey(Base):
    """A client's idempotency key for a money mutation (refund, payout, dispute): the first
    request's input fingerprint and result; kept at least settings.idempotency_key_ttl_seconds."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (PrimaryKeyConstraint("scope", "key"),)

    scope: Mapped[str] = mapped_column(String(200), nullable=False)  # operation + caller, e.g. refund:user:7
    key: Mapped[str] = mapped_column(String(120), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    result: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at()


class DeadLetterStatus(StrEnum):
    """A dead letter: open, replayed or discarded."""

    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


DEAD_LETTER_STATUSES = tuple(DeadLetterStatus)


class DeadLetter(Base):
    """A job whose retries ran out (or that failed for good): kept in PostgreSQL, not only in
    Dramatiq's volatile ``.XQ`` set, so an admin can read, replay or discard it."""

    __tablename__ = "dead_letters"
    __table_args__ = (CheckConstraint(f"status IN {sql_in(DeadLetterStatus)}", name="status"),)

    id: Mapped[int] = pk()
    actor: Mapped[str] = mapped_column(String(80), nullable=False)
    queue: Mapped[str] = mapped_column(String(40), nullable=False)
    args: Mapped[dict] = mapped_column(JSONB, nullable=False)  # actor keyword arguments
    source_type: Mapped[str | None] = mapped_column(String(32))  # webhook | refund | payout | email
    source_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict | None] = mapped_column(JSONB)  # e.g. the webhook body
    headers: Mapped[dict | None] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    last_error: Mapped[str] = mapped_column(Text, nullable=False)
    traceback: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    created_at: Mapped[datetime] = created_at()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))


class ReconciliationRun(Base):
    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = pk()
    started_at: Mapped[datetime] = created_at()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checked: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    updated: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    mismatches: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    errors: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


RECONCILIATION_OUTCOMES = ("updated", "unchanged", "mismatch", "error")


class ReconciliationItem(Base):
    """One object asked about: ours vs the gateway's view. ``mismatch`` items wait for an admin."""

    __tablename__ = "reconciliation_items"
    __table_args__ = (CheckConstraint(f"outcome IN {RECONCILIATION_OUTCOMES}", name="outcome"),)

    id: Mapped[int] = pk()
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("reconciliation_runs.id"), nullable=False, index=True)
    object_type: Mapped[str] = mapped_column(String(16), nullable=False)  # payment | refund | payout
    object_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reference: Mapped[str] = mapped_column(String(64), nullable=False)
    gateway: Mapped[str] = mapped_column(String(32), nullable=False)
    our_status: Mapped[str] = mapped_column(String(16), nullable=False)
    gateway_status: Mapped[str | None] = mapped_column(String(16))
    our_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    gateway_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    our_currency: Mapped[str | None] = mapped_column(String(3))
    gateway_currency: Mapped[str | None] = mapped_column(String(3))
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = created_at()
