"""The shared context of the GraphQL schema (as domain/shared/): what every context's types and root
fields use and no feature owns. ``common`` (Money, points, page info, the generated error-code
enums), ``node`` (the Relay ``node`` field's typed resolver), ``live`` (the live root fields'
events and their registration for shared fan-out), and its one root type, ``Query`` (``node``).

The schema/ top level holds no GraphQL types, only the machinery that builds, guards and serves the
schema (schema/__init__.py combines every context's root types; extensions, audit, security,
text_guard, observability, http, fanout). Every feature lives in a package named after its context
(identity, messaging, providers, catalogue, money, reviews, orders, bookings, operations), each with
one ``Query``, ``Mutation`` and, where it has live fields, ``Subscription`` in its ``root`` module.
"""

from schema.shared.root import Query

__all__ = ["Query"]
