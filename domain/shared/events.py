"""Typed live events: every payload published on the pub/sub bus (through the outbox) is one of these
models, with unknown fields forbidden. Each context declares its events (``domain/<context>/events.py``)
and registers them under the channel prefix they travel on; ``outbox.publish_event`` takes only a
``LiveEvent``, so a producer cannot publish a payload its model does not describe.

Every stream event carries ``id`` (the row id in PostgreSQL, increasing) and ``prev`` (the stream's
previous id, 0 for the first): the contract of the gapless follower in domain/shared/live.py. Keys are
the published JSON keys (camelCase for statuses and notifications, snake_case for chat messages, as
clients have always received them).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class LiveEvent(BaseModel):
    """Base of the events of one stream. ``channel_prefix`` names the channels it travels on."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    channel_prefix: ClassVar[str] = ""

    id: int
    prev: int

    def payload(self) -> dict[str, Any]:
        """The JSON object published (and returned by the polling queries), keys as declared."""
        return self.model_dump(mode="json")


_by_prefix: dict[str, type[LiveEvent]] = {}


def register(model: type[LiveEvent]) -> type[LiveEvent]:
    """Class decorator: ``model`` describes the events of channels starting with its ``channel_prefix``."""
    if not model.channel_prefix:
        raise ValueError(f"{model.__name__} has no channel_prefix")
    _by_prefix[model.channel_prefix] = model
    return model


def model_for(channel: str) -> type[LiveEvent]:
    """The event model of ``channel``. Raises ``LookupError`` for a channel no model describes."""
    for prefix, model in _by_prefix.items():
        if channel.startswith(prefix):
            return model
    raise LookupError(f"no live event model for channel {channel!r}")


def registered() -> dict[str, type[LiveEvent]]:
    """Channel prefix -> model, for tests and docs."""
    return dict(_by_prefix)
