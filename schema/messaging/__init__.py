"""Messaging in GraphQL (domain/messaging/): chat (``chat``), the in-app notification feed (``feed``)
and email preferences and log (``email``). The context's root fields are in ``root`` (``Query``,
``Mutation``, ``Subscription``), combined with the other contexts' in schema/__init__.py.

What every context uses (Money, points, page info, coded payload errors, the live helpers, the Relay
node field) is schema/shared/; the schema/ top level holds no types, only the machinery around the
schema (extensions, audit, security, text_guard, observability, http, fanout).
"""

from schema.messaging.root import Mutation, Query, Subscription

__all__ = ["Mutation", "Query", "Subscription"]
