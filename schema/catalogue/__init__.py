"""The catalogue in GraphQL (domain/catalogue/): services, tiers and prices (``services``). The
context's root field is in ``root`` (``Query``; no mutations), combined with the other contexts' in
schema/__init__.py.

What every context uses (Money, points, page info, coded payload errors, the live helpers, the Relay
node field) is schema/shared/; the schema/ top level holds no types, only the machinery around the
schema (extensions, audit, security, text_guard, observability, http, fanout).
"""

from schema.catalogue.root import Query

__all__ = ["Query"]
