"""Shared fan-out for subscriptions: one GraphQL execution per event and distinct selection, the
same serialised frame to every socket (docs/pitfalls.md: Strawberry's default runs the whole
execution once per subscriber per event, about 100-190 us of CPU per delivery).

How it works. Subscribers of a *shared field* (registered in ``SHARED`` by each context's root
module, through ``schema.shared.live.shared_field``) who ask for the same document, operation and
variables (``after`` aside) on the same stream form a ``Group``. The group holds ONE pub/sub
subscription, executes the document once per event with the event as root value, serialises the
``next`` payload once, and queues ``(id, payload)`` to each member; each member's task writes
``{"id":<its operation id>,"type":"next","payload":<payload>}``.
Shared fields must return pure data types (no resolver reads the viewer): authorisation runs per
member when it joins, through the same ``open`` function as the per-subscriber path.

Gapless (domain/shared/live.py's contract): the group fills gaps itself (an event whose ``prev`` is after
the last id it broadcast makes it read PostgreSQL), polls PostgreSQL while the bus is down and
re-reads from its last id after resubscribing, so its members receive a contiguous sequence. A
joining member registers first, then replays ``id > after`` from PostgreSQL, then drains its queue
skipping ids it already sent.

Limits: a member whose socket does not keep up (``live_member_queue_limit`` frames queued) is
closed with 4429; a member stays in its group until its operation completes or the socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import structlog
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    parse,
    specified_rules,
    validate,
)
from graphql.execution import Executor, execute_subscription_event
from graphql.execution.values import get_argument_values
from prometheus_client import Counter, Gauge
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation

from domain.identity.user import InvalidToken, load_viewer
from domain.shared import live
from models.db import session_scope
from resolvers import audit
from resolvers.live import Opened, heartbeating
from settings import get_settings

log = structlog.get_logger("odim.fanout")

EXECUTIONS = Counter("odim_fanout_executions_total", "GraphQL executions of shared subscription events")
DELIVERIES = Counter("odim_fanout_deliveries_total", "Frames sent to sockets by shared fan-out")
GROUPS = Gauge("odim_fanout_groups", "Shared fan-out groups (stream x selection) open in this process")

RENDER_CACHE = 512  # rendered payloads kept per group, by event id (replays of recent events are free)


@dataclass(frozen=True)
class SharedField:
    """A root Subscription field served by shared fan-out: ``open(context, args)`` authorises and
    returns the stream (raises GraphQLError to refuse); ``to_root(payload)`` builds the field's
    value (a pure data object) from one stream payload."""

    open: Callable[[Any, dict[str, Any]], Awaitable[Opened]]
    to_root: Callable[[dict], Any]


SHARED: dict[str, SharedField] = {}


@dataclass(frozen=True)
class Prepared:
    document: DocumentNode
    operation: OperationDefinitionNode
    field_node: FieldNode
    field: SharedField
    after_variables: frozenset[str]  # variables bound to the field's `after` (left out of the group key)


@lru_cache(maxsize=512)
def prepare(query: str, operation_name: str | None) -> Prepared | list[GraphQLError] | None:
    """Parse and validate a subscription document once (cached by text). Returns None when it is
    not for shared fan-out (not a single shared root field: Strawberry's path serves it), the
    validation errors, or the prepared plan."""
    from schema import LIMIT_RULES, schema

    try:
        document = parse(query, max_tokens=2000)
    except GraphQLError:
        return None  # Strawberry's path reports syntax errors the usual way
    operations = [
        d for d in document.definitions if isinstance(d, OperationDefinitionNode)
        and (operation_name is None or (d.name and d.name.value == operation_name))
    ]
    if len(operations) != 1 or operations[0].operation != OperationType.SUBSCRIPTION:
        return None
    selections = operations[0].selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode) or selections[0].directives:
        return None
    field = SHARED.get(selections[0].name.value)
    if field is None:
        return None
    errors = validate(schema._schema, document, [*specified_rules, *LIMIT_RULES])
    if errors:
        return errors
    after_variables = frozenset(
        arg.value.name.value for arg in selections[0].arguments or ()  # None when the field has no arguments
        if arg.name.value == "after" and isinstance(arg.value, VariableNode)
    )
    return Prepared(document, operations[0], selections[0], field, after_variables)


def _format(result: Any) -> str:
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [_masked(e) for e in result.errors]
    return json.dumps(payload, separators=(",", ":"))


def _masked(error: GraphQLError) -> dict:
    if error.original_error is None or isinstance(error.original_error, GraphQLError):
        return error.formatted
    log.error("fanout.unexpected_error", path=error.path, exc_info=error.original_error)
    return {"message": "Internal server error", "path": error.path, "extensions": {"code": "INTERNAL_SERVER_ERROR"}}


class Member:
    __slots__ = ("last", "queue")

    def __init__(self, last: int | None) -> None:
        self.last = last
        self.queue: asyncio.Queue = asyncio.Queue()


class Group:
    """One stream x one selection: a single pub/sub subscription and execution per event."""

    def __init__(self, key: tuple, stream: live.Stream, executor: Executor, to_root: Callable) -> None:
        self.key = key
        self.stream = stream
        self.executor = executor
        self.to_root = to_root
        self.members: set[Member] = set()
        self.ready = asyncio.Event()
        self.last = 0  # the last id broadcast to the members
        self.rendered: OrderedDict[int, str] = OrderedDict()
        self.executions = 0
        self.task = asyncio.create_task(self.run(), name=f"fanout-{stream.channel}")

    async def render(self, payload: dict) -> str:
        """The serialised ``next`` payload for one stream payload (cached by id)."""
        ident = int(payload["id"])
        cached = self.rendered.get(ident)
        if cached is not None:
            return cached
        result = execute_subscription_event(self.executor.build_per_event_executor(self.to_root(payload)))
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        self.executions += 1
        EXECUTIONS.inc()
        text = _format(result)
        self.rendered[ident] = text
        if len(self.rendered) > RENDER_CACHE:
            self.rendered.popitem(last=False)
        return text

    async def broadcast(self, payload: dict) -> None:
        text = await self.render(payload)
        self.last = int(payload["id"])
        item = (self.last, text)
        for member in self.members:
            member.queue.put_nowait(item)

    async def catch_up(self) -> None:
        """Broadcast every payload after ``self.last`` from PostgreSQL."""
        async for row in live.replay(self.stream, self.last):
            await self.broadcast(row)

    async def run(self) -> None:
        poll = get_settings().live_poll_seconds
        first = True
        while True:
            try:
                async with live.bus.subscribe(self.stream.channel) as events:
                    if first:
                        self.last = await self.stream.latest()
                        first = False
                    else:
                        await self.catch_up()
                    self.ready.set()
                    async for event in events:
                        place = live.is_next(event, self.last)
                        if place is None:
                            continue
                        if place:
                            await self.broadcast(event)
                        else:
                            await self.catch_up()
                log.info("fanout.resubscribe", channel=self.stream.channel, last=self.last)
            except live.LiveUnavailable:
                if first:
                    self.last = await self.stream.latest()
                    first = False
                else:
                    await self.catch_up()
                self.ready.set()
                await live.bus.wait_connected(poll)
            except Exception:  # PostgreSQL unreachable while catching up: retry, never die silently
                log.exception("fanout.group_error", channel=self.stream.channel)
                await asyncio.sleep(poll)


class Hub:
    """The process's groups, by (field, channel, document, operation, variables without ``after``)."""

    def __init__(self) -> None:
        self.groups: dict[tuple, Group] = {}

    def join(self, key: tuple, stream: live.Stream, executor: Executor, to_root: Callable, member: Member) -> Group:
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, stream, executor, to_root)
            GROUPS.set(len(self.groups))
        group.members.add(member)
        return group

    async def leave(self, group: Group, member: Member) -> None:
        group.members.discard(member)
        if not group.members and self.groups.get(group.key) is group:
            del self.groups[group.key]
            GROUPS.set(len(self.groups))
            group.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await group.task


hub = Hub()


def _frame(operation_id: str, payload: str) -> str:
    return '{"id":' + json.dumps(operation_id) + ',"type":"next","payload":' + payload + "}"


async def serve(handler: BaseGraphQLTransportWSHandler, operation: Operation, prepared: Prepared) -> bool:
    """Run one shared subscription until the client completes it or the socket closes. Returns
    False when it must go through Strawberry's path instead (never after sending anything)."""
    from schema import schema

    built = Executor.build(
        schema._schema, prepared.document, context_value=handler.context,
        raw_variable_values=operation.variables, operation_name=operation.operation_name,
    )
    if isinstance(built, list):
        await operation.send_initial_errors(built)
        return True
    field_def = schema._schema.subscription_type.fields[prepared.field_node.name.value]
    try:
        args = get_argument_values(field_def, prepared.field_node, built.variable_values)
        opened = await prepared.field.open(handler.context, args)
    except GraphQLError as error:
        # As Strawberry's path does for an error raised by the subscription resolver: one `next`
        # with the error and no data, then `complete`.
        payload = json.dumps({"data": None, "errors": [_masked(error)]}, separators=(",", ":"))
        await handler.websocket.ws.send_text(_frame(operation.id, payload))
        code = audit.denial_code(error)
        if code is not None:  # audited like Strawberry's path does (schema/audit.py)
            name = prepared.operation.name.value if prepared.operation.name else "subscription"
            await audit.record_denial(handler.context, code=code, operation=name, path=prepared.field_node.name.value,
                                      transport="ws")
        return True
    variables = {k: v for k, v in (operation.variables or {}).items() if k not in prepared.after_variables}
    key = (
        prepared.field_node.name.value, opened.stream.channel, operation.query, operation.operation_name,
        json.dumps(variables, sort_keys=True, default=str),
    )
    member = Member(opened.after)
    group = hub.join(key, opened.stream, built, prepared.field.to_root, member)
    send = handler.websocket.ws.send_text  # the Starlette WebSocket under Strawberry's adapter
    limit = get_settings().live_member_queue_limit
    try:
        async with heartbeating(opened):
            await group.ready.wait()
            if member.last is None:
                member.last = group.last
            else:
                async for row in live.replay(opened.stream, member.last):
                    if int(row["id"]) <= member.last:
                        continue
                    await send(_frame(operation.id, await group.render(row)))
                    DELIVERIES.inc()
                    member.last = int(row["id"])
            while True:
                ident, payload = await member.queue.get()
                if ident <= member.last:
                    continue
                await send(_frame(operation.id, payload))
                DELIVERIES.inc()
                member.last = ident
                if member.queue.qsize() > limit:
                    log.warning("fanout.slow_consumer", channel=opened.stream.channel, queued=member.queue.qsize())
                    await handler.websocket.close(4429, "Too slow: live events piled up; reconnect with after")
                    return True
    finally:
        await hub.leave(group, member)


class FanoutTransportWSHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws with shared fan-out for the ``SHARED`` fields (when
    ``live_fanout == "shared"``) and socket limits: at most ``ws_max_messages_per_10s`` client
    messages per 10 s (more: closed with 4429), and closed with 4408 after ``ws_idle_seconds``
    without client messages while no subscription is running."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._window_start = 0.0
        self._window_count = 0
        self._last_message = asyncio.get_running_loop().time()
        self._idle_task: asyncio.Task | None = None

    async def handle(self) -> None:
        self._idle_task = asyncio.create_task(self._close_when_idle(), name="ws-idle")
        session_task = asyncio.create_task(self._close_when_signed_out(), name="ws-session")
        try:
            await super().handle()
        finally:
            self._idle_task.cancel()
            session_task.cancel()

    async def _close_when_signed_out(self) -> None:
        """A socket lives no longer than its access token: closed with 4403 when the token expires,
        or within ``ws_session_check_seconds`` of its sign-in being signed out or revoked (one
        statement per socket per check). The client reconnects with a fresh token and ``after``."""
        interval = get_settings().ws_session_check_seconds
        while True:
            claims = getattr(self.context, "claims", None)
            if claims is None:
                await asyncio.sleep(interval)  # not authenticated yet, or anonymous
                continue
            left = (claims.expires_at - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(0.0, min(left, interval)))
            reason = None
            if claims.expires_at <= datetime.now(UTC):
                reason = "Access token expired; reconnect with a fresh token"
            else:
                try:
                    async with session_scope() as session:
                        await load_viewer(session, claims)
                except InvalidToken as exc:
                    reason = exc.message
                except Exception:  # the database is unreachable: check again later, keep serving
                    log.warning("ws.session_check_failed", exc_info=True)
            if reason:
                with contextlib.suppress(Exception):
                    await self.websocket.close(4403, reason)
                return

    async def _close_when_idle(self) -> None:
        idle = get_settings().ws_idle_seconds
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(1.0, idle / 4))
            if not self.operations and loop.time() - self._last_message > idle:
                with contextlib.suppress(Exception):
                    await self.websocket.close(4408, "Idle: no subscription and no message")
                return

    async def handle_message(self, message: Any) -> None:
        now = asyncio.get_running_loop().time()
        self._last_message = now
        if now - self._window_start > 10:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > get_settings().ws_max_messages_per_10s:
            log.warning("ws.flood_closed", messages=self._window_count)
            await self.websocket.close(4429, "Too many messages")
            return
        await super().handle_message(message)

    async def run_operation(self, operation: Operation) -> None:
        if get_settings().live_fanout == "shared":
            try:
                prepared = prepare(operation.query, operation.operation_name)
            except Exception:  # a bug here must still answer the client, not leave it waiting
                log.exception("fanout.prepare_failed", request_id=getattr(self.context, "request_id", None))
                prepared = [GraphQLError("Internal server error", extensions={"code": "INTERNAL_SERVER_ERROR"})]
            if isinstance(prepared, list):
                await operation.send_initial_errors(prepared)
                return
            if prepared is not None:
                try:
                    await serve(self, operation, prepared)
                    await operation.send_operation_message({"id": operation.id, "type": "complete"})
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("fanout.operation_failed")
                    with contextlib.suppress(Exception):
                        await operation.send_operation_message({"id": operation.id, "type": "complete"})
                    self.operations.pop(operation.id, None)
                return
        await super().run_operation(operation)
