"""What every context's live root fields share: the events of an opened stream as root values
(Strawberry's per-subscriber path) and the registration of a field for shared fan-out
(schema/fanout.py). The streams themselves are opened by resolvers/live.py.

Every Subscription field resumes without gaps: pass `after` = the id of the last event you saw and
you receive every later event exactly once and in order, then live ones (domain/shared/live.py).
Without `after`, events from the moment you subscribe. The same events are available by query for
polling clients (`serviceRequestStatusEventsSince`, `bookingStatusEventsSince`, `chatMessagesSince`,
`notificationsSince`). With `ODIM_LIVE_FANOUT=shared` (the default) subscribers with the same
selection share one execution per event (schema/fanout.py); the fields' own resolvers are then only
called for other documents.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from resolvers import live as live_resolvers
from schema.fanout import SHARED, SharedField


def shared_field(name: str, open_: Callable[[Any, dict[str, Any]], Awaitable[live_resolvers.Opened]],
                 to_root: Callable[[dict], Any]) -> None:
    """Serve the Subscription field ``name`` by shared fan-out: ``open_(context, args)`` authorises and
    opens its stream (the same function as the field's own resolver), ``to_root(payload)`` builds the
    field's value from one stream payload."""
    SHARED[name] = SharedField(open=open_, to_root=to_root)


async def events(opened: live_resolvers.Opened, to_root: Callable[[dict], Any]) -> AsyncGenerator[Any, None]:
    """The values of an opened stream's events, in order, for a Subscription field's own resolver."""
    async for e in live_resolvers.events(opened):
        yield to_root(e)
