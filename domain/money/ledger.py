"""Posting to the double-entry ledger (models/money/ledger.py), in the caller's database transaction.

A posting is a list of legs ``(account, signed amount in minor units)`` whose amounts sum to zero
per currency. ``post`` writes it atomically with whatever business change the caller makes, so a
payment is captured in the ledger exactly when its status changes, never one without the other.

Concurrency: the accounts a posting touches are locked with ``SELECT ... FOR NO KEY UPDATE ORDER
BY id`` (a fixed order, so two postings over the same accounts never deadlock), then their kept balances
are updated and versioned. The database refuses a negative balance on a non-negative account
(CHECK constraint): the poster turns that into ``InsufficientFunds`` after rolling back to a
savepoint, so nothing is half-written. Idempotent: a posting's ``idempotency_key`` is unique, and
posting it again returns ``None`` and changes nothing.

Every row lock in domain/ is ``FOR NO KEY UPDATE`` (SQLAlchemy ``with_for_update(key_share=True)``),
never ``FOR UPDATE``: inserting a row whose foreign key points at a locked row (a ledger transaction
naming its order, a refund naming its payment) takes ``FOR KEY SHARE`` on it, which ``FOR UPDATE``
blocks and ``FOR NO KEY UPDATE`` does not. With ``FOR UPDATE`` the property tests found a deadlock:
a refund settling (accounts locked, inserting a transaction that names the order) against a dispute
resolution (order locked, waiting for the same accounts).

The shape of the accounts (pgledger's model: transfers between accounts, some of which may go
negative) and the flows, all per currency:

    payment captured      gateway_clearing(gw)  -> escrow(order)
    escrow released       escrow(order)         -> provider_payable(p), platform_revenue
    commission earned     platform_revenue      -> affiliate_payable(a)
    refund requested      escrow(order) | provider_payable | platform_revenue | dispute_losses -> refunds_payable
    commission reversed   affiliate_payable(a)  -> platform_revenue
    refund sent           refunds_payable       -> gateway_clearing(gw)
    payout sent           provider_payable(p)   -> payout_in_transit(p)
    payout paid           payout_in_transit(p)  -> gateway_clearing(gw)
    payout failed         payout_in_transit(p)  -> provider_payable(p)

Hot accounts. Every capture in a currency credits its gateway's clearing account, every release the
platform's revenue, every refund the refunds payable: one row each would make every such posting wait
for the previous one's commit (measured: 15-29 captures/s whatever the client count). These four
kinds (``HOT_KINDS``) are striped: each is up to ``settings.ledger_hot_account_stripes`` rows (``#k`` in
the key, ``#0`` being the plain key). An order draws its stripe when it is created
(``service_requests.ledger_stripe``, ``new_stripe``) and every posting about it uses that stripe, so
all postings of one order meet the same rows and lock them in the same order, different orders
rarely meet, and changing the setting never moves an order's money to another row (orders from
before striping keep stripe 0). A payout's clearing leg uses ``payout id % N``. Each stripe is an ordinary account: locked running balance, version,
``balance_after`` per entry, and the same CHECK (refunds payable may not go negative, per stripe, and
a refund is reserved and sent on its order's stripe). ``balance`` and every report sum the stripes:
the account is reported as one.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.money.errors import MoneyErrorCode
from domain.shared import audit
from domain.shared.errors import DomainError
from models import LedgerAccount, LedgerEntry, LedgerTransaction
from settings import get_settings


class UnbalancedTransaction(DomainError):
    """A posting whose legs do not sum to zero per currency (a programming error)."""

    code = MoneyErrorCode.UNBALANCED


class InsufficientFunds(DomainError):
    """A posting would take a non-negative account below zero."""

    code = MoneyErrorCode.INSUFFICIENT_FUNDS


HOT_KINDS = frozenset({"gateway_clearing", "platform_revenue", "refunds_payable", "dispute_losses"})


@dataclass(frozen=True)
class Account:
    """An account by its natural key; created on first use. ``stripe`` > 0 only for ``HOT_KINDS``."""

    kind: str
    currency: str
    owner_type: str | None = None
    owner_id: int | None = None
    allow_negative: bool = False
    owner_name: str | None = None  # for owners without a row id (a gateway)
    stripe: int = 0

    @property
    def family_key(self) -> str:
        """The key of the account reported as one (all its stripes)."""
        if self.owner_type is None:
            owner = "platform"
        else:
            owner = f"{self.owner_type}:{self.owner_name if self.owner_name is not None else self.owner_id}"
        return f"{self.kind}:{owner}:{self.currency}"

    @property
    def key(self) -> str:
        return self.family_key + (f"#{self.stripe}" if self.stripe else "")


def new_stripe() -> int:
    """A stripe for a new order: uniform in ``[0, settings.ledger_hot_account_stripes)``."""
    return secrets.randbelow(max(1, get_settings().ledger_hot_account_stripes))


def stripe_for(ident: int) -> int:
    """The stripe of a posting keyed by ``ident`` (a payout id): ``ident % N``."""
    return ident % max(1, get_settings().ledger_hot_account_stripes)


def gateway_clearing(gateway: str, currency: str, *, stripe: int = 0) -> Account:
    """Money held for us at ``gateway``. It is where money enters and leaves, so it goes negative:
    its balance is minus what the gateway holds for us. Striped."""
    return Account("gateway_clearing", currency, "gateway", allow_negative=True, owner_name=gateway, stripe=stripe)


def escrow(service_request_id: int, currency: str) -> Account:
    return Account("escrow", currency, "service_request", service_request_id)


def provider_payable(provider_id: int, currency: str) -> Account:
    return Account("provider_payable", currency, "provider", provider_id)


def payout_in_transit(provider_id: int, currency: str) -> Account:
    return Account("payout_in_transit", currency, "provider", provider_id)


def platform_revenue(currency: str, *, stripe: int = 0) -> Account:
    """The platform's commission and guest fees; never negative (per stripe). Striped."""
    return Account("platform_revenue", currency, stripe=stripe)


def affiliate_payable(affiliate_id: int, currency: str) -> Account:
    return Account("affiliate_payable", currency, "affiliate", affiliate_id)


def refunds_payable(currency: str, *, stripe: int = 0) -> Account:
    """Refunds owed to customers until the gateway sends them; never negative (per stripe: a refund is
    reserved and sent on its order's stripe). Striped."""
    return Account("refunds_payable", currency, stripe=stripe)


def dispute_losses(currency: str, *, stripe: int = 0) -> Account:
    """Refunds the platform paid from its own pocket (the provider had been paid already). Striped."""
    return Account("dispute_losses", currency, allow_negative=True, stripe=stripe)


Leg = tuple[Account, int]


async def post(
    session: AsyncSession,
    kind: str,
    idempotency_key: str,
    legs: list[Leg],
    *,
    service_request_id: int | None = None,
    memo: str = "",
) -> LedgerTransaction | None:
    """Write one balanced ledger transaction in the caller's database transaction.

    ``legs``: ``(account, amount_minor)``, signed (positive raises the balance); zero legs are
    dropped. Returns the transaction, or ``None`` when ``idempotency_key`` was posted before
    (nothing written). Raises ``UnbalancedTransaction`` when the legs do not sum to zero per
    currency, ``InsufficientFunds`` when a non-negative account would go below zero (nothing
    written, the caller's other changes are kept)."""
    legs = [(account, amount) for account, amount in legs if amount != 0]
    totals: dict[str, int] = defaultdict(int)
    for account, amount in legs:
        totals[account.currency] += amount
    if any(totals.values()):
        raise UnbalancedTransaction(f"posting {idempotency_key} does not balance: {dict(totals)}")
    if not legs:
        return None
    try:
        async with session.begin_nested():
            txn = await _post(session, kind, idempotency_key, legs, service_request_id, memo)
            if txn is not None:
                await _audit(session, txn, legs)
            return txn
    except IntegrityError as exc:
        if "ck_ledger_accounts_non_negative" in str(exc.orig):
            raise InsufficientFunds(f"posting {idempotency_key} would overdraw an account") from exc
        raise


async def _audit(session: AsyncSession, txn: LedgerTransaction, legs: list[Leg]) -> None:
    """One audit row per ledger transaction, in the same database transaction (every money
    movement is audited): ``money.<kind>``, subject the LedgerTransaction id, details the amount
    moved per currency and each leg's account key and signed amount (ids only, no personal data)."""
    moved: dict[str, int] = defaultdict(int)
    for account, amount in legs:
        if amount > 0:
            moved[account.currency] += amount
    await audit.record(
        session, action=f"money.{txn.kind}", subject_type="LedgerTransaction", subject_id=txn.id,
        details={"serviceRequestId": txn.service_request_id, "amountsMinor": dict(moved),
                 "legs": [{"account": account.key, "amountMinor": amount} for account, amount in legs]},
    )


async def lock(session: AsyncSession, accounts: list[Account]) -> dict[str, int]:
    """Lock the accounts (``FOR NO KEY UPDATE``) in id order, creating the missing ones; returns
    ``{key: id}``. A database transaction that will post several times locks the union of the
    accounts it will touch first (``domain.money.locks.lock_order_money``), so it never takes a lower id after
    a higher one and no two transactions can wait on each other. (A new account's id is above
    every existing one, so locking it after the existing ones keeps the order.)"""
    by_key = {account.key: account for account in accounts}
    locking = (
        select(LedgerAccount.key, LedgerAccount.id)
        .where(LedgerAccount.key.in_(by_key))
        .order_by(LedgerAccount.id)
        .with_for_update(key_share=True)
    )
    ids = dict((await session.execute(locking)).all())
    missing = [by_key[k] for k in sorted(by_key) if k not in ids]
    if missing:
        await session.execute(
            insert(LedgerAccount)
            .values([
                {"key": a.key, "kind": a.kind, "currency": a.currency, "owner_type": a.owner_type,
                 "owner_id": a.owner_id, "allow_negative": a.allow_negative}
                for a in missing
            ])
            .on_conflict_do_nothing(index_elements=["key"])
        )
        ids = dict((await session.execute(locking)).all())
    return ids


_APPLY_DELTAS = text(
    "UPDATE ledger_accounts AS a SET balance_minor = a.balance_minor + d.delta, version = a.version + 1 "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:deltas AS bigint[])) AS d(id, delta) "
    "WHERE a.id = d.id RETURNING a.id, a.balance_minor, a.version"
)


async def _post(
    session: AsyncSession, kind: str, key: str, legs: list[Leg], service_request_id: int | None, memo: str
) -> LedgerTransaction | None:
    # Lock every account this posting touches, in id order: no two postings deadlock. While the
    # locks are held the posting makes three more round trips (transaction, balances, entries):
    # every capture in a currency waits on its gateway's clearing account, so they are kept short.
    ids = await lock(session, [account for account, _ in legs])
    txn = await session.scalar(
        insert(LedgerTransaction)
        .values(kind=kind, idempotency_key=key, service_request_id=service_request_id, memo=memo)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(LedgerTransaction)
    )
    if txn is None:
        return None
    per_account: dict[int, int] = defaultdict(int)
    for account, amount in legs:
        per_account[ids[account.key]] += amount
    rows = (
        await session.execute(_APPLY_DELTAS, {"ids": list(per_account), "deltas": list(per_account.values())})
    ).all()
    balances = {row.id: (row.balance_minor, row.version) for row in rows}
    now = datetime.now(UTC)
    await session.execute(
        insert(LedgerEntry).values([
            {"transaction_id": txn.id, "account_id": ids[account.key], "currency": account.currency,
             "amount_minor": amount, "balance_after_minor": balances[ids[account.key]][0],
             "account_version": balances[ids[account.key]][1], "created_at": now}
            for account, amount in legs
        ])
    )
    return txn


async def balance(session: AsyncSession, account: Account) -> int:
    """The kept balance of ``account`` in minor units (0 when it was never used); for a striped
    account, the sum of its stripes (whatever stripe ``account`` names): the account as one."""
    if account.kind not in HOT_KINDS:
        value = await session.scalar(select(LedgerAccount.balance_minor).where(LedgerAccount.key == account.key))
    else:
        family = account.family_key
        value = await session.scalar(select(func.sum(LedgerAccount.balance_minor)).where(
            (LedgerAccount.key == family) | LedgerAccount.key.startswith(family + "#")))
    return int(value or 0)


@dataclass(frozen=True)
class LedgerCheck:
    """``verify``'s findings: per-currency sums of all entries (each must be 0), accounts whose kept
    balance differs from the sum of their entries, and non-negative accounts below zero."""

    currency_sums: dict[str, int]
    drifted_accounts: list[str]
    negative_accounts: list[str]

    @property
    def ok(self) -> bool:
        return not any(self.currency_sums.values()) and not self.drifted_accounts and not self.negative_accounts


async def verify(session: AsyncSession) -> LedgerCheck:
    """Audit the whole ledger (three aggregate statements): zero-sum per currency, kept balances
    equal to the sum of entries, no forbidden negatives."""
    sums = dict(
        (await session.execute(select(LedgerEntry.currency, func.sum(LedgerEntry.amount_minor)).group_by(LedgerEntry.currency))).all()
    )
    entry_sums = (
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_minor).label("total"))
        .group_by(LedgerEntry.account_id)
        .subquery()
    )
    drifted = (
        await session.scalars(
            select(LedgerAccount.key)
            .outerjoin(entry_sums, entry_sums.c.account_id == LedgerAccount.id)
            .where(LedgerAccount.balance_minor != func.coalesce(entry_sums.c.total, 0))
        )
    ).all()
    negative = (
        await session.scalars(
            select(LedgerAccount.key).where(LedgerAccount.allow_negative.is_(False), LedgerAccount.balance_minor < 0)
        )
    ).all()
    return LedgerCheck({c: int(v) for c, v in sums.items()}, list(drifted), list(negative))


@dataclass(frozen=True)
class TrialBalanceLine:
    kind: str
    currency: str
    accounts: int
    balance_minor: int


async def trial_balance(session: AsyncSession) -> list[TrialBalanceLine]:
    """Balances summed by account kind and currency (an admin report; sums to zero per currency)."""
    rows = (
        await session.execute(
            select(LedgerAccount.kind, LedgerAccount.currency, func.count(), func.sum(LedgerAccount.balance_minor))
            .group_by(LedgerAccount.kind, LedgerAccount.currency)
            .order_by(LedgerAccount.currency, LedgerAccount.kind)
        )
    ).all()
    return [TrialBalanceLine(k, c, int(n), int(b)) for k, c, n, b in rows]
