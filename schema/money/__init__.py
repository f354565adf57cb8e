"""Money in GraphQL (domain/money/): the fee preview and fee lines (``fees``), an order's receipt,
settlement and refunds (``refunds``), the ledger's trial balance and affiliate totals (``ledger``)
and provider payouts (``payout``). The context's root fields are in ``root`` (``Query``,
``Mutation``), combined with the other contexts' in schema/__init__.py.

What every context uses (Money, points, page info, coded payload errors, the live helpers, the Relay
node field) is schema/shared/; the schema/ top level holds no types, only the machinery around the
schema (extensions, audit, security, text_guard, observability, http, fanout).
"""

from schema.money.root import Mutation, Query

__all__ = ["Mutation", "Query"]
