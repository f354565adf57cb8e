"""Operations in GraphQL (domain/operations/, and the audit log and dead letters of domain/shared/):
dead letters (``dead_letters``), reconciliation (``reconciliation``), financial reports
(``reports``), data export and erasure (``privacy``) and the audit log (``audit_log``). The
context's root fields are in ``root`` (``Query``, ``Mutation``), combined with the other contexts'
in schema/__init__.py.

What every context uses (Money, points, page info, coded payload errors, the live helpers, the Relay
node field) is schema/shared/; the schema/ top level holds no types, only the machinery around the
schema (extensions, audit, security, text_guard, observability, http, fanout).
"""

from schema.operations.root import Mutation, Query

__all__ = ["Mutation", "Query"]
