"""Row locks: the one lock order of the whole domain, and the helper every context's ``locks`` module
builds on.

Every row lock is ``SELECT ... FOR NO KEY UPDATE`` (SQLAlchemy ``with_for_update(key_share=True)``):
foreign-key checks of concurrent inserts take ``FOR KEY SHARE`` on the referenced row, which ``FOR
UPDATE`` blocks and ``FOR NO KEY UPDATE`` does not (with ``FOR UPDATE`` the money property tests found
a deadlock between a posting and an insert referencing the same order).

A transaction that needs several locks takes them in this order, never backwards, so two transactions
can wait on each other only in one direction (no deadlock):

1. the user's account row (onboarding drafts);
2. the provider (``domain/providers/locks.py``): plan changes, holds, strikes, review publication;
3. the payment (``domain/orders/payment.py``, by reference, when a webhook is applied);
4. the order (``domain/orders/locks.py``);
5. the booking (``domain/bookings/locks.py``; its order first when it has one);
6. rows hanging off them: reviews, disputes, the order's earning (``domain/money/locks.py``);
7. ledger accounts, in id order (``domain/money/ledger.py``);
8. notification feed rows of users, in user id order, last (``domain/messaging/feed.py``).

Each context's ``locks`` module states which of these it takes and is the only place that does.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

LOCK_ORDER = ("account", "provider", "payment", "order", "booking", "dependent rows", "ledger accounts",
              "notification feeds")


async def lock_row(session: AsyncSession, model: type[T], ident: Any, *, populate_existing: bool = False) -> T | None:
    """Row ``ident`` of ``model`` locked ``FOR NO KEY UPDATE`` until commit, or None when there is none.
    ``populate_existing`` refreshes an instance already in the session with the locked row's values."""
    stmt = select(model).where(model.id == ident).with_for_update(key_share=True)  # type: ignore[attr-defined]
    if populate_existing:
        stmt = stmt.execution_options(populate_existing=True)
    return await session.scalar(stmt)
