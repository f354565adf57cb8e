"""Order kinds: the seam between orders and what an order is for.

An order (a ``service_requests`` row) has a kind (``ServiceRequest.kind``):

* ``purchase``: a catalogue tier bought outright (domain/orders/purchase.py). Operators and its
  provider move it through the request state machine; it has its own conversation, its own contract
  and is reviewed as an order.
* ``booking``: the order of a booking's visits (registered by domain/bookings/hooks.py). Its visits
  move it; the conversation, contract and reviews are the visits'.

Orders code never tests a kind by name: it asks ``of(request)`` for the kind's traits and calls its
hooks. A higher context (bookings) implements ``OrderKind`` and registers it when its package is
imported; the lower one (orders) only knows the protocol. ``of`` raises ``UnknownOrderKind`` for a
kind nobody registered, so a process that forgot to import a context fails loudly, never silently.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from models import Payment, ServiceRequest


class UnknownOrderKind(LookupError):
    """No ``OrderKind`` is registered under the order's ``kind`` (its context was not imported)."""


class OrderKind(Protocol):
    """What one kind of order does differently. Traits are plain booleans; hooks run in the caller's
    transaction with the order row-locked."""

    name: str
    #: operators and the assigned provider move it (``updateServiceRequestStatus``, ``assignProvider``)
    moved_by_operators: bool
    #: it gets a conversation of its own when opened (otherwise its visits carry theirs)
    has_own_conversation: bool
    #: work needs the order's own contract accepted before ``in_progress``
    has_own_contract: bool
    #: status changes reach the customer's and provider's notification feeds as order changes
    notifies_status: bool

    async def on_paid(
        self, session: AsyncSession, request: ServiceRequest, payment: Payment, *, amount: str
    ) -> str | None:
        """The order's payment completed (``payment`` already ``completed``; the caller captures it into
        escrow next). Move the order on and tell people, and return None. When the order can no longer
        take the money (a booking whose hold expired first), change nothing and return why: the caller
        captures and refunds it at once."""
        ...

    async def on_dispute_resolved(
        self, session: AsyncSession, request: ServiceRequest, *, actor_user_id: int | None, resolution: str, note: str,
    ) -> None:
        """A dispute on the order was settled (its refund, if any, already created)."""
        ...

    async def on_cancelled(
        self, session: AsyncSession, request: ServiceRequest, *, actor_user_id: int | None, note: str,
    ) -> None:
        """Orders cancels the order (a dispute refunded it in full while the work was not completed): move
        the order, and whatever hangs on it, to cancelled. No further refund: the money is already on
        its way back."""
        ...


_kinds: dict[str, OrderKind] = {}


def register(kind: OrderKind) -> None:
    """Make ``kind`` the implementation for orders whose ``kind`` column is ``kind.name`` (idempotent
    for the same object; another object under a taken name raises ``ValueError``)."""
    existing = _kinds.get(kind.name)
    if existing is not None and existing is not kind:
        raise ValueError(f"order kind {kind.name!r} is already registered")
    _kinds[kind.name] = kind


def of(request: ServiceRequest) -> OrderKind:
    """The registered kind of ``request``. Raises ``UnknownOrderKind``."""
    return named(request.kind)


def named(name: str) -> OrderKind:
    """The registered kind called ``name``. Raises ``UnknownOrderKind``."""
    try:
        return _kinds[name]
    except KeyError:
        raise UnknownOrderKind(
            f"order kind {name!r} is not registered: import its context (domain.bookings for 'booking')"
        ) from None
