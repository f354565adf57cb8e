"""The double-entry ledger: accounts, transactions and their (immutable) entries.

Rules enforced by PostgreSQL itself (migration 0002), not only by the code that posts:

* an entry's currency is its account's currency (composite foreign key);
* entries and transactions are never updated or deleted (triggers raise); corrections are new
  reversing transactions;
* every transaction's entries sum to zero per currency, checked at COMMIT by a deferred
  constraint trigger;
* an account that does not allow a negative balance never has one (CHECK on the kept balance).

``ledger_accounts.balance_minor`` is kept in step by the poster with ``version`` bumped on every
change; ``domain.ledger.verify`` recomputes it from the entries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk

ACCOUNT_KINDS = (
    "gateway_clearing",  # money held for us at a gateway (negative: it came from outside)
    "escrow",  # one per order: customer money held until completion
    "provider_payable",  # earned by a provider, not yet paid out
    "payout_in_transit",  # sent to a provider, not yet settled by the gateway
    "platform_revenue",  # commission and guest surcharge
    "affiliate_payable",  # commission earned by an affiliate
    "refunds_payable",  # owed back to customers, refund not yet settled by the gateway
    "dispute_losses",  # refunds the platform absorbed because the provider was already paid
)


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(f"kind IN {ACCOUNT_KINDS}", name="kind"),
        CheckConstraint("allow_negative OR balance_minor >= 0", name="non_negative"),
        UniqueConstraint("id", "currency"),
    )

    id: Mapped[int] = pk()
    # ``<kind>:<owner>:<currency>``, e.g. ``escrow:service_request:42:XAF``; one account per key.
    key: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    owner_type: Mapped[str | None] = mapped_column(String(32))
    owner_id: Mapped[int | None] = mapped_column(BigInteger)
    allow_negative: Mapped[bool] = mapped_column(Boolean, nullable=False)
    balance_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = created_at()


TRANSACTION_KINDS = (
    "payment_captured",
    "escrow_released",
    "affiliate_commission_earned",
    "affiliate_commission_reversed",
    "refund_requested",
    "refund_sent",
    "payout_sent",
    "payout_paid",
    "payout_failed",
)


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"
    __table_args__ = (
        CheckConstraint(f"kind IN {TRANSACTION_KINDS}", name="kind"),
        Index("ix_ledger_transactions_service_request_id", "service_request_id"),
    )

    id: Mapped[int] = pk()
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    # What makes posting idempotent: ``payment_captured:pay_...``, ``escrow_released:sr:42`` ...
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True, nullable=False)
    service_request_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("service_requests.id"))
    memo: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = created_at()


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount_minor <> 0", name="non_zero"),
        ForeignKeyConstraint(["account_id", "currency"], ["ledger_accounts.id", "ledger_accounts.currency"]),
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = pk()
    transaction_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ledger_transactions.id"), nullable=False, index=True
    )
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # Signed: positive raises the account's balance, negative lowers it. Sum per transaction and
    # currency is zero.
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    balance_after_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    account_version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
