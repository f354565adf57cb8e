"""Root fields of the shared context: the Relay ``node`` field."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry import relay

from schema.shared.node import resolve_node


@strawberry.type
class Query:
    @strawberry.field(description="Any object by its global id (null when absent or not yours).")
    async def node(
        self, info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The ID of the object.")],
    ) -> relay.Node | None:
        return await resolve_node(info, id)  # typed INVALID_ID for malformed ids (schema/shared/node.py)
