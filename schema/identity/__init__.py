"""Identity in GraphQL (domain/identity/): accounts, sign-in and sessions. Types in ``user``; the
context's root fields in ``root`` (``Query``, ``Mutation``), combined with the other contexts' in
schema/__init__.py.

What every context uses (Money, points, page info, coded payload errors, the live helpers, the Relay
node field) is schema/shared/; the schema/ top level holds no types, only the machinery around the
schema (extensions, audit, security, text_guard, observability, http, fanout).
"""

from schema.identity.root import Mutation, Query

__all__ = ["Mutation", "Query"]
