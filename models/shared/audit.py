"""The append-only audit log ("Data protection and audit").

One row per security- or money-relevant event: admin actions, ledger postings, logins, MFA events,
password resets and permission denials. Rows are written by ``domain.audit`` and never changed:
PostgreSQL refuses every UPDATE and DELETE on the table with a trigger (migration 0008), whoever
asks, so a compromised process cannot rewrite history through the application's connection.

``actor_id`` deliberately has no foreign key to ``users``: deleting or anonymising an account
(GDPR erasure) must never touch the audit trail. ``details`` never holds personal data (no email,
phone, address, token or password), only ids, codes and amounts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Text, func, text
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, pk

AUDIT_OUTCOMES = ("ok", "failed", "denied")


class AuditEntry(Base):
    """One audit event. ``action`` is dotted lowercase (``money.payment_captured``,
    ``admin.refundServiceRequest``, ``authz.denied``, ``auth.login.failed``); ``outcome`` is one of
    ``AUDIT_OUTCOMES``; ``subject_type``/``subject_id`` name the object acted on (a type name and
    its database id as text) when there is one."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(f"outcome IN {AUDIT_OUTCOMES}", name="outcome"),
        # Filters of ``auditLog`` and the CSV export, each usable with the newest-first (id DESC) keyset.
        Index("ix_audit_log_occurred_at", "occurred_at"),
        Index("ix_audit_log_actor_id_id", "actor_id", "id"),
        # text_pattern_ops: the index also serves ``actionPrefix`` (LIKE 'money.%') whatever the collation.
        Index("ix_audit_log_action_id", "action", "id", postgresql_ops={"action": "text_pattern_ops"}),
        Index("ix_audit_log_subject", "subject_type", "subject_id", "id"),
    )

    id: Mapped[int] = pk()
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    outcome: Mapped[str] = mapped_column(Text, nullable=False, server_default="ok")
    actor_id: Mapped[int | None] = mapped_column(BigInteger)  # users.id, no FK on purpose (see module doc)
    actor_role: Mapped[str | None] = mapped_column(Text)  # customer | provider | admin | guest | system
    ip: Mapped[str | None] = mapped_column(INET)
    request_id: Mapped[str | None] = mapped_column(Text)
    subject_type: Mapped[str | None] = mapped_column(Text)
    subject_id: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
