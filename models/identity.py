"""Accounts: customers, providers and admins (one role per account), their sign-in sessions
(refresh-token families) and single-use emailed links (password reset, email verification)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk
from models.crypto import EncryptedText, blind_index, blind_index_column, keep_blind_index

USER_ROLES = ("customer", "provider", "admin")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN {USER_ROLES}", name="role"),
        # One account per address: the blind index of the lower-cased email (the email itself is encrypted).
        Index("uq_users_email_bidx", "email_bidx", unique=True),
    )

    id: Mapped[int] = pk()
    email: Mapped[str] = mapped_column(EncryptedText("users.email", blind_index="email"), nullable=False)
    email_bidx: Mapped[str] = blind_index_column("email", "email", index=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    full_name: Mapped[str] = mapped_column(String(200), nullable=False)
    phone: Mapped[str | None] = mapped_column(EncryptedText("users.phone", blind_index="phone"))
    phone_bidx: Mapped[str | None] = blind_index_column("phone", "phone")
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="customer")
    created_at: Mapped[datetime] = created_at()
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # TOTP (RFC 6238) secret, base32; set by an enrolment, live once ``mfa_enabled_at`` is set.
    mfa_secret: Mapped[str | None] = mapped_column(Text)
    mfa_enabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The last accepted TOTP time step: a code is accepted once (RFC 6238 section 5.2).
    mfa_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # Set when the account was erased (domain/operations/privacy.py): personal fields anonymised, no sign-in.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


TOKEN_PURPOSES = ("password_reset", "email_verification")
SESSION_END_REASONS = ("logout", "logout_everywhere", "password_changed", "password_reset", "refresh_token_reused",
                       "revoked", "account_deleted")


class AuthSession(Base):
    """One sign-in: a refresh-token family. Access tokens name it (``sid``) and die with it."""

    __tablename__ = "auth_sessions"
    __table_args__ = (
        CheckConstraint(f"revoked_reason IS NULL OR revoked_reason IN {SESSION_END_REASONS}", name="revoked_reason"),
        Index("ix_auth_sessions_user_live", "user_id", postgresql_where=text("revoked_at IS NULL")),
    )

    id: Mapped[int] = pk()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    mfa: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    user_agent: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at()
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(Base):
    """Every refresh token ever issued, by SHA-256: the live one has ``used_at`` NULL; presenting a
    used one again means it was stolen, and its whole family (session) is revoked."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = pk()
    session_id: Mapped[int] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"), nullable=False, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = created_at()
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccountToken(Base):
    """A single-use emailed link (password reset, email verification), stored by SHA-256."""

    __tablename__ = "account_tokens"
    __table_args__ = (CheckConstraint(f"purpose IN {TOKEN_PURPOSES}", name="purpose"),)

    id: Mapped[int] = pk()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


keep_blind_index(User.email, "email")
keep_blind_index(User.phone, "phone")


def email_matches(email: str):
    """SQL clause: the ``users`` row whose email is ``email`` (case-insensitive, exact match). Emails are
    encrypted at rest: this compares the blind index (``users.email_bidx``, unique; models/crypto.py)."""
    return User.email_bidx == blind_index(email, "email")
