"""The Relay ``node(id:)`` root field's resolver (the field: schema/shared/root.py), with a typed error
for ids that cannot name an object.

Strawberry's own ``relay.node()`` turned a malformed id into an error without ``extensions.code``
("Value cannot represent a GlobalID") and an id of an unknown type or with a non-numeric part into
an unexpected exception (INTERNAL_SERVER_ERROR): both found by the GraphQL fuzzer (tests/system/fuzzing.py).
"""

from __future__ import annotations

import inspect
import re

import strawberry
from graphql import GraphQLError
from strawberry import relay

_DB_ID = re.compile(r"[0-9]{1,19}")
MAX_DB_ID = 2**63 - 1  # every table's id is a PostgreSQL bigint


def invalid_id() -> GraphQLError:
    return GraphQLError("Not an id of this API: pass the `id` of an object it returned",
                        extensions={"code": "INVALID_ID", "field": "id"})


async def resolve_node(info: strawberry.Info, id: strawberry.ID) -> relay.Node | None:
    """The object named by global id ``id`` (base64 of ``"TypeName:123"``), or None when it does not
    exist or the caller may not see it (each type's ``resolve_nodes`` authorises). Raises INVALID_ID
    when ``id`` is not base64 of ``"<Node type>:<decimal id>"``."""
    try:
        gid = relay.GlobalID.from_id(str(id))
        node_type = gid.resolve_type(info)
    except relay.GlobalIDValueError:
        raise invalid_id() from None
    if not _DB_ID.fullmatch(gid.node_id):
        raise invalid_id()
    if int(gid.node_id) > MAX_DB_ID:
        return None  # no row can have it
    found = node_type.resolve_node(gid.node_id, info=info, required=False)
    return await found if inspect.isawaitable(found) else found

