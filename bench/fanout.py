"""Fan-out benchmark: N WebSocket subscribers on one conversation, M chat messages, with the server's
shared fan-out against Strawberry's naive per-subscriber execution measured in the same run.

One run does everything, against the development stack (settings.py defaults: PostgreSQL :54320,
Redis :63790), started and migrated when it is down (``bench.geosearch.ensure_database``)::

    uv run python bench/fanout.py                            # 1,000 subscribers, 20 messages, naive then shared
    uv run python bench/fanout.py --subscribers 1000 5000    # both sizes, one after the other
    uv run python bench/fanout.py --help

1. Setup (kept between runs, created when missing): a ``bench-fanout`` service (one tier, 5,000 XAF),
   a customer account ``bench-fanout-customer@example.com`` with one purchase of it (which opens
   the request's conversation), and an operator account ``bench-fanout-operator@example.com``
   (role admin, so a participant of every conversation). Tokens come from ``domain.user.open_session``.
2. ``--client-procs`` (2) subscriber processes are spawned once and reused by every run: each one
   an asyncio loop (uvloop) holding its share of the sockets with the ``websockets`` client
   (no permessage-deflate unless ``--deflate``, no protocol-level pings, no proxy) and doing as
   little as it can per frame: the message's sequence number and send time are found in the body
   with a byte search, no JSON parsing. It answers the server's graphql-transport-ws ``ping``.
3. For each ``--subscribers`` N and each ``--modes`` mode (``naive`` then ``shared``):

   * starts the API (``uv run uvicorn server:app --workers 1``, ``--server-workers``) on ``--port``
     with ``ODIM_LIVE_FANOUT=<mode>`` and ``ODIM_CHAT_RATE_LIMIT=1000000/minute`` (one account sends
     everything; ``--server-env KEY=VALUE`` adds or overrides), and waits for ``/readyz``.
     RLIMIT_NOFILE is raised to its hard limit in this process first: the server and the subscriber
     processes inherit it;
   * send cost: with nobody subscribed yet, 3 unmeasured then ``--messages`` messages sent exactly as
     the measured ones will be; the server's CPU for them / messages is what one send costs the
     server, subtracted below to give the fan-out's own CPU ("net of sends");
   * connects N sockets, all as the customer: ``connection_init`` with ``{"token": ...}``,
     ``connection_ack``, then ``subscribe`` to
     ``subscription($c: ID!) { chatMessageAdded(conversationId: $c) { id body createdAt senderName } }``
     (with ``--mixed``, every second socket selects only ``{ id body }``). Each subscriber process
     opens ``--connect-batch`` (20) sockets at once, then pauses ``--connect-pause-ms`` (200): the
     server authorises every subscription with two pooled database sessions, one inside the other,
     and 50 or more authorisations at once exhaust its pool of 50 connections (every one of them
     then fails after the pool's 30 s timeout);
   * warm-up: sends a warm-up message every 2 s until every socket has received one (or every
     socket that has not is gone), so every subscription is acknowledged and registered on the bus
     before anything is measured;
   * publishes ``--messages`` (20) messages as the operator through the real send path: the
     ``sendChatMessage`` mutation over HTTP (``--publish http``, the default: the API stores the
     message, commits, and relays the outbox to Redis pub/sub), or ``domain.chat.send_message`` in a
     session here followed by ``domain.outbox.relay()`` (``--publish domain``). As a burst, all in
     flight at once (``--publish-concurrency`` limits it), or one at a time every ``--interval-ms``.
     Each body is ``fanout-bench <seq> <time.time_ns() just before the send>``;
   * waits until every socket has every message, or until nothing has arrived for ``--settle`` (15) s;
   * reads the CPU of the server process tree (uv + uvicorn, ``/proc/<pid>/stat`` utime + stime),
     of the subscriber processes and of this process just before the first message is sent and just
     after the last delivery, the machine's busy and steal time (``/proc/stat``), and PostgreSQL's
     transactions (``pg_stat_database``) and Redis's commands (``INFO stats``) around the same phase;
   * stops the subscribers' sockets and the server.

4. Prints, per run: deliveries (expected, received, lost, duplicated), deliveries per second (all
   deliveries / (last delivery - first send)), server CPU per delivery (the server tree's CPU over
   that window / deliveries: it includes the M sends and the keep-alive pings; and net of the sends),
   subscriber CPU per delivery, publish-to-receive latency p50/p99/max (receive time - the send time
   in the body: it includes the mutation's HTTP round, commit and relay, and in a burst the wait
   behind the messages before it), the server's CPU per subscription opened, database transactions
   and Redis commands per message, and per subscriber count the ratios shared / naive; writes the
   report to ``bench/results/fanout-<UTC timestamp>.txt`` and its figures to
   ``fanout-<UTC timestamp>.json``.

Figures only: nothing here asserts a time (docs/conventions.md). The script exits with status 1 when any
delivery is lost or duplicated, a socket fails to connect or subscribe, a socket is closed or gets a
GraphQL error during the run, or a message fails to send.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import asyncpg
import httpx
import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text

from bench.geosearch import (
    ensure_database,
    machine_cores,
    machine_cpu,
    machine_info,
    percentile,
    port_in_use,
    server_env,
    stop_server,
    tree_cpu_seconds,
    wait_ready,
)
from models.db import dispose_engine, session_scope

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SERVICE_SLUG = "bench-fanout"
CURRENCY = "XAF"
PRICE_MINOR = 5_000  # XAF has no minor unit: 5,000 XAF
CUSTOMER_EMAIL = "bench-fanout-customer@example.com"
OPERATOR_EMAIL = "bench-fanout-operator@example.com"
PHONE = "+237671234567"
#: Start of every bench message body: ``fanout-bench <seq> <send time, ns since the epoch>``;
#: seq 0 is a warm-up message, 1..M the measured ones.
MARK = "fanout-bench"
MARK_B = MARK.encode()
#: Server environment of every run, before ``--server-env``: one account sends all the messages, far
#: beyond the per-account chat rate limit meant for people (settings.chat_rate_limit).
#: The per-IP /graphql limit likewise: every bench client is 127.0.0.1.
BENCH_SERVER_ENV = {"ODIM_CHAT_RATE_LIMIT": "1000000/minute", "ODIM_RATE_LIMIT_PUBLIC": "1000000/minute"}

SUBSCRIPTION_FULL = (
    "subscription($c: ID!) { chatMessageAdded(conversationId: $c) { id body createdAt senderName } }"
)
SUBSCRIPTION_SMALL = "subscription($c: ID!) { chatMessageAdded(conversationId: $c) { id body } }"
SEND_MUTATION = (
    "mutation($input: SendChatMessageInput!) { sendChatMessage(input: $input) "
    "{ message { id } errors { field code message } } }"
)

console = Console(record=True, width=160)


# --------------------------------------------------------------------------------------------
# Subscriber processes (spawned; lean: one asyncio loop, byte searches, no JSON parsing per frame)
# --------------------------------------------------------------------------------------------


class _Sock:
    """One subscriber socket's state in a subscriber process."""

    __slots__ = ("counts", "warm", "subscribed", "closed", "ended", "other", "ws", "task")

    def __init__(self, messages: int) -> None:
        self.counts = bytearray(messages + 1)  # deliveries per seq (capped at 255), index 0 unused
        self.warm = False  # got a warm-up message
        self.subscribed = False
        self.closed: str | None = None  # set when the socket closed while we still wanted it
        self.ended = False  # the server ended the subscription (an ``error`` or ``complete`` frame)
        self.other: list[str] = []  # unexpected frames (errors, complete), the first few
        self.ws: Any = None
        self.task: asyncio.Task | None = None


class _Subscribers:
    """The sockets of one subscriber process, driven by commands from the bench over a pipe."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sockets: list[_Sock] = []
        self.latencies: list[int] = []  # ns, measured messages only
        self.measured = 0
        self.last_ns = 0
        self.stopping = False

    async def reader(self, sock: _Sock) -> None:
        from websockets.exceptions import ConnectionClosed

        ws, counts, lat = sock.ws, sock.counts, self.latencies
        top = len(counts)
        try:
            while True:
                data = await ws.recv(decode=False)
                now = time.time_ns()
                i = data.find(MARK_B)
                if i >= 0:
                    j = i + len(MARK_B) + 1
                    k = data.index(b" ", j)
                    seq = int(data[j:k])
                    if seq == 0:
                        sock.warm = True
                        continue
                    sent = int(data[k + 1:data.index(b'"', k)])
                    if 0 < seq < top:
                        if counts[seq] < 255:
                            counts[seq] += 1
                        lat.append(now - sent)
                        self.measured += 1
                        self.last_ns = now
                    continue
                if b'"ping"' in data:
                    await ws.send('{"type":"pong"}')
                elif b'"pong"' in data:
                    continue
                if b'"complete"' in data or b'"error"' in data or b'"errors"' in data:
                    sock.ended = True
                if len(sock.other) < 3:
                    sock.other.append(data[:300].decode(errors="replace"))
                else:
                    sock.other.append("")
        except ConnectionClosed as exc:
            if not self.stopping:
                sock.closed = f"closed {exc.rcvd.code if exc.rcvd else 'without a close frame'}"
        except Exception as exc:  # a malformed frame: report it, never hide it
            sock.closed = f"{type(exc).__name__}: {exc}"[:200]

    async def open_one(self, sock: _Sock, url: str, origin: str, token: str, query: str, variables: dict,
                       deflate: bool, timeout: float) -> str | None:
        from websockets.asyncio.client import connect

        try:
            sock.ws = await connect(url, origin=origin, subprotocols=["graphql-transport-ws"],
                                    compression="deflate" if deflate else None, proxy=None, open_timeout=timeout,
                                    ping_interval=None, ping_timeout=None, close_timeout=2, max_queue=None)
            await sock.ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
            ack = await asyncio.wait_for(sock.ws.recv(), timeout)
            if '"connection_ack"' not in ack:
                return f"no connection_ack: {ack[:200]}"
            await sock.ws.send(json.dumps({"id": "1", "type": "subscribe",
                                           "payload": {"query": query, "variables": variables}}))
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        sock.subscribed = True
        sock.task = asyncio.create_task(self.reader(sock))
        return None

    async def connect(self, cmd: dict) -> dict:
        """Open ``cmd["n"]`` sockets, ``cmd["batch"]`` at a time."""
        self.sockets = [_Sock(cmd["messages"]) for _ in range(cmd["n"])]
        self.latencies, self.measured, self.last_ns, self.stopping = [], 0, 0, False
        errors: list[str] = []
        started = time.perf_counter()
        for lo in range(0, len(self.sockets), cmd["batch"]):
            batch = range(lo, min(lo + cmd["batch"], len(self.sockets)))
            results = await asyncio.gather(*(
                self.open_one(self.sockets[i], cmd["url"], cmd["origin"], cmd["token"],
                              cmd["queries"][(cmd["first_index"] + i) % len(cmd["queries"])], cmd["variables"],
                              cmd["deflate"], cmd["timeout"])
                for i in batch))
            errors += [r for r in results if r]
            if cmd["pause"]:
                await asyncio.sleep(cmd["pause"])
        return {"subscribed": sum(s.subscribed for s in self.sockets), "failed": len(errors),
                "first_errors": errors[:3], "seconds": time.perf_counter() - started}

    def status(self) -> dict:
        return {"subscribed": sum(s.subscribed for s in self.sockets),
                "warm": sum(s.warm for s in self.sockets),
                "closed": sum(s.closed is not None for s in self.sockets),
                "dead": sum(s.closed is not None or s.ended for s in self.sockets),
                "measured": self.measured, "last_ns": self.last_ns}

    def results(self, sent: list[int]) -> dict:
        """Per-socket accounting over the seqs that were sent successfully."""
        lost = dup = 0
        for s in self.sockets:
            if not s.subscribed:
                continue
            for seq in sent:
                c = s.counts[seq]
                if c == 0:
                    lost += 1
                elif c > 1:
                    dup += c - 1
        closed = [s.closed for s in self.sockets if s.closed]
        other = [o for s in self.sockets for o in s.other]
        return {"lost": lost, "duplicated": dup, "closed": len(closed), "first_closed": closed[:3],
                "unexpected_frames": len(other), "first_unexpected": [o for o in other if o][:3],
                "latencies_ns": self.latencies, **self.status()}

    async def close(self) -> dict:
        self.stopping = True
        for s in self.sockets:
            if s.task is not None:
                s.task.cancel()
        await asyncio.gather(*(s.ws.close() for s in self.sockets if s.ws is not None), return_exceptions=True)
        n = len(self.sockets)
        self.sockets = []
        self.latencies = []
        return {"closed": n}

    async def serve(self) -> None:
        while True:
            # A thread reads the pipe: loop.add_reader would make its descriptor non-blocking, and
            # sending a large answer (the latencies) would then fail with EAGAIN.
            cmd = await asyncio.to_thread(self.conn.recv)
            op = cmd["op"]
            if op == "connect":
                self.conn.send(await self.connect(cmd))
            elif op == "status":
                self.conn.send(self.status())
            elif op == "results":
                self.conn.send(self.results(cmd["sent"]))
            elif op == "close":
                self.conn.send(await self.close())
            elif op == "exit":
                await self.close()
                return


def subscriber_process(conn: Connection) -> None:
    """Entry point of a subscriber process (multiprocessing, spawn)."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_Subscribers(conn).serve())


class SubscriberPool:
    """The bench's side of the subscriber processes."""

    def __init__(self, procs: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=subscriber_process, args=(child,), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)

    async def ask_all(self, cmds: list[dict]) -> list[dict]:
        for conn, cmd in zip(self.conns, cmds, strict=True):
            conn.send(cmd)
        return await asyncio.gather(*(asyncio.to_thread(conn.recv) for conn in self.conns))

    async def ask(self, cmd: dict) -> list[dict]:
        return await self.ask_all([cmd] * len(self.conns))

    def cpu_seconds(self) -> float:
        return sum(tree_cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send({"op": "exit"})
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()


# --------------------------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------------------------


@dataclass
class BenchData:
    conversation_id: int
    conversation_gid: str
    customer_id: int
    operator_id: int
    customer_token: str
    operator_token: str
    messages_before: int
    created: dict[str, int]


async def ensure_bench_data() -> BenchData:
    """The bench service, the customer with one purchase (and so one conversation) and the operator:
    reused when an earlier run made them, created when missing."""
    from domain.identity.user import find_by_email, hash_password, open_session
    from domain.orders.service_request import purchase_service
    from gateways.sandbox import SandboxGateway
    from models import Conversation, ServiceRequest, ServiceTier, TierPrice, User
    from models import Service as ServiceModel
    from resolvers.ids import encode_id

    created = {"service": 0, "users": 0, "conversation": 0}
    async with session_scope() as s:
        service = await s.scalar(select(ServiceModel).where(ServiceModel.slug == SERVICE_SLUG))
        if service is None:
            service = ServiceModel(slug=SERVICE_SLUG, name="Benchmark chat", category="bench",
                                   description="Created by bench/fanout.py")
            s.add(service)
            await s.flush()
            tier = ServiceTier(service_id=service.id, name="Chat", position=0, features=[])
            s.add(tier)
            await s.flush()
            s.add(TierPrice(tier_id=tier.id, currency=CURRENCY, amount_minor=PRICE_MINOR))
            created["service"] = 1
        service_id = service.id
        tier_id = await s.scalar(select(ServiceTier.id).where(ServiceTier.service_id == service_id)
                                 .order_by(ServiceTier.position, ServiceTier.id).limit(1))
        users = {}
        for email, role, name in ((CUSTOMER_EMAIL, "customer", "Bench Fanout Customer"),
                                  (OPERATOR_EMAIL, "admin", "Bench Fanout Operator")):
            user = await find_by_email(s, email)
            if user is None:
                user = User(email=email, password_hash=hash_password(os.urandom(16).hex()), full_name=name,
                            phone=PHONE, role=role)
                s.add(user)
                await s.flush()
                created["users"] += 1
            users[role] = user
    customer, operator = users["customer"], users["admin"]
    async with session_scope() as s:
        conversation_id = await s.scalar(
            select(Conversation.id).join(ServiceRequest, ServiceRequest.id == Conversation.service_request_id)
            .where(ServiceRequest.customer_user_id == customer.id, ServiceRequest.service_id == service_id)
            .order_by(Conversation.id).limit(1))
    if conversation_id is None:
        async with session_scope() as s:
            bought = await purchase_service(s, SandboxGateway(), service_id=service_id, tier_id=tier_id,
                                            customer=None, user=customer, currency=CURRENCY)
            request_id = bought.service_request.id
        async with session_scope() as s:
            conversation_id = await s.scalar(select(Conversation.id).where(
                Conversation.service_request_id == request_id))
        created["conversation"] = 1
    async with session_scope() as s:
        before = await s.scalar(text("SELECT count(*) FROM chat_messages WHERE conversation_id = :c"),
                                {"c": conversation_id})
        # Sign-ins made directly (the operator's as if it had presented a TOTP code): the bench measures
        # fan-out, not login.
        customer_token = (await open_session(s, customer)).access_token
        operator_token = (await open_session(s, operator, mfa=True)).access_token
    await dispose_engine()
    return BenchData(conversation_id, encode_id("Conversation", conversation_id), customer.id, operator.id,
                     customer_token, operator_token, before, created)


# --------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------


class Publisher:
    """Sends bench messages into the conversation as the operator, over HTTP or in-process."""

    def __init__(self, kind: str, base_url: str, data: BenchData) -> None:
        self.kind = kind
        self.data = data
        self.http = httpx.AsyncClient(base_url=base_url, timeout=120.0,
                                      headers={"Authorization": f"Bearer {data.operator_token}"})
        self.call_seconds: list[float] = []
        self.errors: list[str] = []

    async def send(self, seq: int) -> bool:
        """One message; True when it was stored and published, False (error recorded) otherwise."""
        started = time.perf_counter()
        body = f"{MARK} {seq} {time.time_ns()}"
        try:
            if self.kind == "http":
                response = await self.http.post("/graphql", json={"query": SEND_MUTATION, "variables": {
                    "input": {"conversationId": self.data.conversation_gid, "body": body}}})
                answer = response.json()
                payload = (answer.get("data") or {}).get("sendChatMessage") or {}
                if response.status_code != 200 or answer.get("errors") or payload.get("errors") or not payload.get(
                        "message"):
                    self.errors.append(f"seq {seq}: HTTP {response.status_code} {json.dumps(answer)[:300]}")
                    return False
            else:
                from domain.messaging import chat
                from domain.shared import outbox
                from models import User

                async with session_scope() as s:
                    operator = await s.get(User, self.data.operator_id)
                    await chat.send_message(s, operator, self.data.conversation_id, body)
                await outbox.relay()
        except Exception as exc:
            self.errors.append(f"seq {seq}: {type(exc).__name__}: {exc}"[:300])
            return False
        finally:
            self.call_seconds.append(time.perf_counter() - started)
        return True

    async def close(self) -> None:
        await self.http.aclose()
        if self.kind == "domain":
            await dispose_engine()


# --------------------------------------------------------------------------------------------
# One run: a server in one mode, N subscribers, M messages
# --------------------------------------------------------------------------------------------


def start_api(port: int, mode: str, log_path: Path, workers: int, extra_env: dict[str, str]) -> subprocess.Popen:
    """``uv run uvicorn server:app`` with ``ODIM_LIVE_FANOUT=<mode>``, in its own process group."""
    env = server_env(port)
    env["ODIM_LIVE_FANOUT"] = mode
    env.update(extra_env)
    cmd = ["uv", "run", "uvicorn", "server:app", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--log-level", "warning", "--backlog", "4096"]
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


async def publish(publisher: Publisher, seqs: list[int], args: argparse.Namespace) -> list[int]:
    """Send the messages ``seqs``: with ``--interval-ms`` one at a time that far apart, otherwise
    ``--publish-concurrency`` at once (0: all of them). Returns the seqs sent successfully."""
    ok: list[int] = []
    if args.interval_ms:
        for seq in seqs:
            if await publisher.send(seq):
                ok.append(seq)
            await asyncio.sleep(args.interval_ms / 1000)
        return ok
    gate = asyncio.Semaphore(args.publish_concurrency or len(seqs))

    async def one(seq: int) -> None:
        async with gate:
            if await publisher.send(seq):
                ok.append(seq)

    await asyncio.gather(*(one(seq) for seq in seqs))
    return sorted(ok)


async def send_cost(publisher: Publisher, server_pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """Server CPU of one ``sendChatMessage`` while nobody subscribes: ``--messages`` warm-up-bodied
    messages sent exactly as the measured ones are (after 3 unmeasured ones to warm the path). The
    measured phase subtracts it to give the fan-out's own CPU per delivery."""
    for _ in range(3):
        await publisher.send(0)
    before = tree_cpu_seconds(server_pid)
    started = time.perf_counter()
    sent = await publish(publisher, [0] * args.messages, args)
    cpu = tree_cpu_seconds(server_pid) - before
    errors = list(publisher.errors)
    publisher.errors.clear()
    publisher.call_seconds.clear()
    return {"messages": len(sent), "seconds": time.perf_counter() - started, "server_cpu_seconds": cpu,
            "server_ms_per_message": cpu / len(sent) * 1000 if sent else math.nan, "send_errors": errors[:3]}


async def backend_counters() -> dict[str, int]:
    """PostgreSQL transactions of the bench database (``pg_stat_database``) and Redis commands
    (``INFO stats``) so far: read before and after the measured phase, a hint of what each message
    costs the backends (the sends, the fan-out's reads if any, this probe's own transaction)."""
    from devstack.seed import asyncpg_dsn
    from settings import get_settings

    conn = await asyncpg.connect(asyncpg_dsn())
    try:
        xacts = await conn.fetchval("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                    "WHERE datname = current_database()")
    finally:
        await conn.close()
    client = aioredis.from_url(get_settings().redis_url)
    try:
        commands = (await client.info("stats"))["total_commands_processed"]
    finally:
        await client.aclose()
    return {"pg_transactions": int(xacts), "redis_commands": int(commands)}


def share(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def ms_stats(ns: list[int]) -> dict[str, float]:
    ordered = sorted(ns)
    if not ordered:
        return {"n": 0, "p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan, "mean_ms": math.nan}
    return {"n": len(ordered), "p50_ms": percentile(ordered, 50) / 1e6, "p99_ms": percentile(ordered, 99) / 1e6,
            "max_ms": ordered[-1] / 1e6, "mean_ms": sum(ordered) / len(ordered) / 1e6}


async def one_run(mode: str, n: int, args: argparse.Namespace, data: BenchData, pool: SubscriberPool,
                  extra_env: dict[str, str]) -> dict[str, Any]:
    port = args.port
    base = f"http://127.0.0.1:{port}"
    if port_in_use(port):
        raise RuntimeError(f"port {port} is in use: stop what listens there or pass --port")
    log_path = Path(f"/tmp/odim-bench-fanout-{mode}-{port}.log")
    run: dict[str, Any] = {"mode": mode, "subscribers": n, "messages": args.messages, "server_log": str(log_path)}
    wall_started = time.perf_counter()
    api = start_api(port, mode, log_path, args.server_workers, extra_env)
    publisher: Publisher | None = None
    try:
        run["ready_seconds"] = await wait_ready(base, api, log_path)
        publisher = Publisher(args.publish, base, data)
        queries = [SUBSCRIPTION_FULL, SUBSCRIPTION_SMALL] if args.mixed else [SUBSCRIPTION_FULL]
        counts = share(n, len(pool.conns))
        firsts = [sum(counts[:i]) for i in range(len(counts))]
        cmds = [{"op": "connect", "n": c, "first_index": f, "url": base.replace("http", "ws", 1) + "/graphql",
                 "origin": base, "token": data.customer_token, "queries": queries,
                 "variables": {"c": data.conversation_gid}, "messages": args.messages, "batch": args.connect_batch,
                 "deflate": args.deflate, "timeout": args.connect_timeout,
                 "pause": args.connect_pause_ms / 1000} for c, f in zip(counts, firsts, strict=True)]
        if args.publish == "http":
            run["send_cost"] = await send_cost(publisher, api.pid, args)
            console.print(f"  [{mode}] server CPU per sendChatMessage with no subscriber: "
                          f"{run['send_cost']['server_ms_per_message']:.1f} ms ({run['send_cost']['messages']} "
                          f"messages)")
        console.print(f"  [{mode}] server ready in {run['ready_seconds']:.1f} s; connecting {n:,} sockets over "
                      f"{len(pool.conns)} subscriber processes ...")
        t0 = time.perf_counter()
        server_before = tree_cpu_seconds(api.pid)
        answers = await pool.ask_all(cmds)
        run["connect_seconds"] = time.perf_counter() - t0
        run["subscribed"] = sum(a["subscribed"] for a in answers)
        run["connect_failed"] = sum(a["failed"] for a in answers)
        run["connect_first_errors"] = [e for a in answers for e in a["first_errors"]][:3]
        console.print(f"  [{mode}] {run['subscribed']:,} subscribed in {run['connect_seconds']:.1f} s, "
                      f"{run['connect_failed']} failed {run['connect_first_errors'] or ''}")

        # Warm-up: every subscription acknowledged AND registered on the bus.
        t0 = time.perf_counter()
        warmups = 0
        warm = 0
        next_warmup = 0.0
        while True:
            now = time.perf_counter()
            if now >= next_warmup:
                await publisher.send(0)
                warmups += 1
                next_warmup = time.perf_counter() + 2.0
            statuses = await pool.ask({"op": "status"})
            warm = sum(s["warm"] for s in statuses)
            dead = sum(s["dead"] for s in statuses)
            if warm >= run["subscribed"] or now - t0 > args.warmup_timeout:
                break
            if dead and warm + dead >= run["subscribed"]:
                break  # every socket is either ready or gone: waiting longer will not help
            await asyncio.sleep(0.1)
        run["warmup"] = {"messages": warmups, "seconds": time.perf_counter() - t0, "sockets_warm": warm,
                         "sockets_gone": dead}
        # Every subscription is registered now: the server's CPU for opening them (handshake,
        # connection_init, subscribe: authorisation and bus registration) and the warm-up messages.
        run["server_ms_per_subscribe"] = ((tree_cpu_seconds(api.pid) - server_before) / run["subscribed"] * 1000
                                          if run["subscribed"] else math.nan)
        console.print(f"  [{mode}] {warm:,} of {run['subscribed']:,} sockets got a warm-up message "
                      f"({warmups} sent, {run['warmup']['seconds']:.1f} s)")
        if warm < run["subscribed"]:
            run["warmup"]["incomplete"] = True
            run["warmup"]["send_errors"] = publisher.errors[:3]
        publisher.errors.clear()
        publisher.call_seconds.clear()

        # Measured phase.
        counters0 = await backend_counters()
        cpu0 = {"server": tree_cpu_seconds(api.pid), "subscribers": pool.cpu_seconds(),
                "publisher": time.process_time(), "machine": machine_cpu(), "t": time.perf_counter()}
        first_send_ns = time.time_ns()
        sent = await publish(publisher, list(range(1, args.messages + 1)), args)
        publish_done = time.perf_counter()
        expected = run["subscribed"] * len(sent)
        measured, last_progress, last_count = 0, time.perf_counter(), -1
        while True:
            statuses = await pool.ask({"op": "status"})
            measured = sum(s["measured"] for s in statuses)
            if measured != last_count:
                last_count, last_progress = measured, time.perf_counter()
            if measured >= expected or time.perf_counter() - last_progress > args.settle:
                break
            await asyncio.sleep(0.05)
        cpu1 = {"server": tree_cpu_seconds(api.pid), "subscribers": pool.cpu_seconds(),
                "publisher": time.process_time(), "machine": machine_cpu(), "t": time.perf_counter()}

        results = await pool.ask({"op": "results", "sent": sent})
        await asyncio.sleep(1.0)  # PostgreSQL backends flush their statistics within a second
        counters1 = await backend_counters()
        run["backend_per_message"] = {k: (counters1[k] - counters0[k]) / len(sent) if sent else math.nan
                                      for k in counters0}
        latencies = [x for r in results for x in r.pop("latencies_ns")]
        last_ns = max((r["last_ns"] for r in results), default=0)
        received = sum(r["measured"] for r in results)
        window = (last_ns - first_send_ns) / 1e9 if last_ns else math.nan
        wall = cpu1["t"] - cpu0["t"]
        busy, steal = machine_cores(cpu0["machine"], cpu1["machine"])
        server_cpu = cpu1["server"] - cpu0["server"]
        sub_cpu = cpu1["subscribers"] - cpu0["subscribers"]
        pub_cpu = cpu1["publisher"] - cpu0["publisher"]
        run.update({
            "messages_sent": len(sent), "send_errors": publisher.errors[:5], "send_error_count": len(publisher.errors),
            "expected": expected, "received": received,
            "lost": sum(r["lost"] for r in results), "duplicated": sum(r["duplicated"] for r in results),
            "closed": sum(r["closed"] for r in results),
            "first_closed": [c for r in results for c in r["first_closed"]][:3],
            "unexpected_frames": sum(r["unexpected_frames"] for r in results),
            "first_unexpected": [c for r in results for c in r["first_unexpected"]][:3],
            "window_seconds": window, "publish_seconds": publish_done - cpu0["t"],
            "deliveries_per_second": received / window if received and window > 0 else math.nan,
            "latency": ms_stats(latencies),
            "send_call": ms_stats([int(x * 1e9) for x in publisher.call_seconds]),
            "cpu_seconds": {"server": server_cpu, "subscribers": sub_cpu, "publisher": pub_cpu},
            "server_us_per_delivery": server_cpu / received * 1e6 if received else math.nan,
            # The same minus what the sends themselves cost the server (measured with no subscriber).
            "server_us_per_delivery_net": (
                (server_cpu - len(sent) * run["send_cost"]["server_ms_per_message"] / 1000) / received * 1e6
                if received and "send_cost" in run else server_cpu / received * 1e6 if received else math.nan),
            "subscribers_us_per_delivery": sub_cpu / received * 1e6 if received else math.nan,
            "cores": {"server": server_cpu / wall, "subscribers": sub_cpu / wall, "publisher": pub_cpu / wall,
                      "machine_busy": busy, "steal": steal,
                      "other": busy - (server_cpu + sub_cpu + pub_cpu) / wall},
            "cpu_window_seconds": wall,
        })
        console.print(f"  [{mode}] {received:,} of {expected:,} deliveries in {window:.2f} s "
                      f"({run['deliveries_per_second']:,.0f}/s), server {run['server_us_per_delivery']:.1f} µs CPU "
                      f"per delivery; lost {run['lost']}, duplicated {run['duplicated']}")
    finally:
        with contextlib.suppress(Exception):
            await pool.ask({"op": "close"})
        if publisher is not None:
            await publisher.close()
        stop_server(api)
        run["run_seconds"] = time.perf_counter() - wall_started
    return run


def burst(args: argparse.Namespace) -> str:
    if args.interval_ms:
        return f"one at a time, every {args.interval_ms:g} ms"
    return f"a burst, {args.publish_concurrency or args.messages} in flight at once"


def run_ok(r: dict[str, Any]) -> bool:
    return (r["lost"] == 0 and r["duplicated"] == 0 and r["connect_failed"] == 0 and r["closed"] == 0
            and r["unexpected_frames"] == 0 and r["send_error_count"] == 0 and r["messages_sent"] > 0
            and not r["warmup"].get("incomplete"))


def fmt(value: float | None, spec: str = ",.1f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by the server and subscriber processes)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def main(args: argparse.Namespace) -> int:
    from settings import get_settings

    extra_env = {**BENCH_SERVER_ENV, **dict(kv.split("=", 1) for kv in args.server_env)}
    if args.publish == "domain":  # this process sends: the same settings as the server
        os.environ.update(extra_env)
        get_settings.cache_clear()
    settings = get_settings()
    if settings.environment == "test":
        console.print("[red]ODIM_ENVIRONMENT=test: the test stack truncates tables before every test; "
                      "run the benchmark on the development stack (unset the ODIM_* test variables)[/red]")
        return 2
    started = time.perf_counter()
    nofile = raise_nofile()
    need = max(args.subscribers) + 200
    if nofile[0] < need:
        console.print(f"[red]RLIMIT_NOFILE is {nofile[0]} (hard {nofile[1]}): {need} needed for "
                      f"{max(args.subscribers):,} sockets in one server process; raise it (ulimit -Hn)[/red]")
        return 2
    console.rule("[bold]Odim fan-out benchmark")
    machine = machine_info()
    for pkg in ("websockets", "uvloop", "broadcaster", "redis"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            machine["packages"][pkg] = metadata.version(pkg)
    timestamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    console.print(f"database: {settings.database_url.rsplit('@', 1)[-1]}   Redis: {settings.redis_url}   "
                  f"API: 127.0.0.1:{args.port}")
    await ensure_database()
    data = await ensure_bench_data()
    console.print(f"conversation {data.conversation_id} ({data.conversation_gid}), {data.messages_before:,} messages "
                  f"before; subscribers: customer {data.customer_id}; sender: operator {data.operator_id} (admin); "
                  f"created {data.created}")

    pool = SubscriberPool(args.client_procs)
    runs: list[dict[str, Any]] = []
    try:
        for n in args.subscribers:
            for mode in args.modes:
                console.rule(f"{n:,} subscribers, ODIM_LIVE_FANOUT={mode}")
                runs.append(await one_run(mode, n, args, data, pool, extra_env))
    finally:
        pool.stop()

    # ---------------------------------------------------------------- figures
    console.rule("[bold]Results")
    table = Table(title="deliveries")
    for col in ("N", "mode", "messages", "delivered / expected", "lost", "dup", "errors", "deliveries/s",
                "server CPU µs / delivery", "net of sends", "p50 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in runs:
        errors = r["connect_failed"] + r["closed"] + r["unexpected_frames"] + r["send_error_count"]
        table.add_row(
            f"{r['subscribers']:,}", r["mode"], str(r["messages_sent"]), f"{r['received']:,} / {r['expected']:,}",
            str(r["lost"]), str(r["duplicated"]), str(errors), fmt(r["deliveries_per_second"], ",.0f"),
            fmt(r["server_us_per_delivery"]), fmt(r["server_us_per_delivery_net"]), fmt(r["latency"]["p50_ms"], ",.0f"),
            fmt(r["latency"]["p99_ms"], ",.0f"), fmt(r["latency"]["max_ms"], ",.0f"))
    console.print(table)
    cpu = Table(title="CPU (cores over the window first send -> last delivery) and phases")
    for col in ("N", "mode", "server", "subscr.", "subscr. µs/dlv", "pub.", "other", "busy", "steal", "window s",
                "connect s", "srv ms/sub", "PG xact/msg", "Redis cmd/msg", "run s"):
        cpu.add_column(col, justify="left" if col == "mode" else "right")
    for r in runs:
        c = r["cores"]
        cpu.add_row(f"{r['subscribers']:,}", r["mode"], fmt(c["server"], ".2f"), fmt(c["subscribers"], ".2f"),
                    fmt(r["subscribers_us_per_delivery"]), fmt(c["publisher"], ".2f"), fmt(c["other"], ".2f"),
                    fmt(c["machine_busy"], ".2f"), fmt(c["steal"], ".2f"), fmt(r["window_seconds"], ".2f"),
                    fmt(r["connect_seconds"]), fmt(r.get("server_ms_per_subscribe"), ".2f"),
                    fmt(r.get("backend_per_message", {}).get("pg_transactions")),
                    fmt(r.get("backend_per_message", {}).get("redis_commands")), fmt(r["run_seconds"]))
    console.print(cpu)
    console.print("deliveries/s: deliveries / (last delivery - first send); server CPU: uv + uvicorn utime + stime "
                  "from the first send to the last delivery (the mutations and keep-alive pings included) / "
                  "deliveries; net of sends: minus messages x the server CPU of one send with no subscriber "
                  "(measured on the same server before the sockets connect); latency: receive time - send time "
                  "in the body (the mutation's HTTP round, commit and relay included); cores over that window; "
                  "busy/steal: the whole machine; subscr.: the subscriber processes; pub.: this process (the "
                  "sends); srv ms/sub: server CPU from the first connect to the end of the warm-up / sockets; "
                  "PG xact/msg, Redis cmd/msg: transactions and commands from the first send to the last delivery "
                  "/ messages.")

    ratios: dict[str, dict[str, float]] = {}
    for n in args.subscribers:
        by_mode = {r["mode"]: r for r in runs if r["subscribers"] == n}
        if "naive" in by_mode and "shared" in by_mode:
            nv, sh = by_mode["naive"], by_mode["shared"]

            def ratio(a: float, b: float) -> float:
                return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan

            ratios[str(n)] = {
                "server_cpu_per_delivery_shared_over_naive": ratio(sh["server_us_per_delivery"],
                                                                   nv["server_us_per_delivery"]),
                "server_cpu_per_delivery_net_shared_over_naive": ratio(sh["server_us_per_delivery_net"],
                                                                       nv["server_us_per_delivery_net"]),
                "deliveries_per_second_shared_over_naive": ratio(sh["deliveries_per_second"],
                                                                 nv["deliveries_per_second"]),
                "p50_shared_over_naive": ratio(sh["latency"]["p50_ms"], nv["latency"]["p50_ms"]),
                "p99_shared_over_naive": ratio(sh["latency"]["p99_ms"], nv["latency"]["p99_ms"]),
            }
            q = ratios[str(n)]
            console.print(f"[bold]{n:,} subscribers, shared / naive[/bold]: server CPU per delivery "
                          f"[bold]{fmt(q['server_cpu_per_delivery_shared_over_naive'], '.2f')}[/bold] (net of sends "
                          f"{fmt(q['server_cpu_per_delivery_net_shared_over_naive'], '.2f')}), deliveries/s "
                          f"[bold]{fmt(q['deliveries_per_second_shared_over_naive'], '.2f')}[/bold], p50 "
                          f"{fmt(q['p50_shared_over_naive'], '.2f')}, p99 {fmt(q['p99_shared_over_naive'], '.2f')}")

    ok = all(run_ok(r) for r in runs)
    for r in runs:
        if not run_ok(r):
            console.print(f"[red]{r['subscribers']:,} / {r['mode']}: lost {r['lost']}, duplicated {r['duplicated']}, "
                          f"connect failures {r['connect_failed']} {r['connect_first_errors']}, closed {r['closed']} "
                          f"{r['first_closed']}, unexpected frames {r['unexpected_frames']} {r['first_unexpected']}, "
                          f"send errors {r['send_error_count']} {r['send_errors']}, warm-up {r['warmup']}[/red]",
                          markup=True, highlight=False)
    console.print("[green]every delivery arrived exactly once[/green]" if ok else
                  "[red]FAILED: see above[/red]")

    console.rule("[bold]Setup")
    console.print(f"{args.messages} messages per run, published with --publish {args.publish} "
                  f"({burst(args)}) as an admin; "
                  f"subscription {'mixed (half select { id body })' if args.mixed else SUBSCRIPTION_FULL}; "
                  f"permessage-deflate {'on' if args.deflate else 'off'}; uvicorn --workers {args.server_workers}; "
                  f"{args.client_procs} subscriber processes (websockets asyncio client on uvloop); "
                  f"RLIMIT_NOFILE {nofile[0]}; extra server env {extra_env or 'none'}")
    for r in runs:
        console.print(f"{r['subscribers']:,} / {r['mode']}: run {r['run_seconds']:.1f} s (server ready "
                      f"{r.get('ready_seconds', math.nan):.1f} s, connect {r.get('connect_seconds', math.nan):.1f} s, "
                      f"warm-up {r['warmup']['seconds']:.1f} s, {r['messages_sent']} messages sent in "
                      f"{r['publish_seconds']:.2f} s, send call p50 {fmt(r['send_call']['p50_ms'])} ms), publisher "
                      f"{fmt(r['cores']['publisher'], '.2f')} cores, other {fmt(r['cores']['other'], '.2f')}; "
                      f"log {r['server_log']}")
    console.print(f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory']} RAM, Linux "
                  f"{machine['kernel']}, Python {machine['python']}, load average at start "
                  f"{' '.join(f'{x:.2f}' for x in machine['loadavg_at_start'])}")
    console.print("packages: " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()))
    total = time.perf_counter() - started
    console.print(f"whole benchmark: {total:.0f} s")

    out = RESULTS_DIR / f"fanout-{timestamp}.json"
    out.write_text(json.dumps({
        "timestamp": timestamp, "command": " ".join(["uv run python bench/fanout.py", *sys.argv[1:]]),
        "options": vars(args), "machine": machine, "conversation_id": data.conversation_id,
        "runs": runs, "ratios": ratios, "ok": ok, "seconds": total,
    }, indent=2, default=str))
    report = RESULTS_DIR / f"fanout-{timestamp}.txt"
    console.print(f"\nwritten {report.relative_to(PROJECT_ROOT)} and {out.name}")
    console.save_text(str(report))
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000],
                        help="WebSocket subscribers per run; several values run one after the other")
    parser.add_argument("--messages", type=int, default=20, help="measured messages per run")
    parser.add_argument("--modes", nargs="+", default=["naive", "shared"], choices=["naive", "shared"],
                        help="ODIM_LIVE_FANOUT of the server, one run each")
    parser.add_argument("--publish", choices=["http", "domain"], default="http",
                        help="http: the sendChatMessage mutation; domain: chat.send_message + outbox.relay() here")
    parser.add_argument("--interval-ms", type=float, default=0.0,
                        help="send one message at a time, this far apart (0: a burst, see --publish-concurrency)")
    parser.add_argument("--publish-concurrency", type=int, default=0,
                        help="messages in flight at once in a burst (0: all --messages at once)")
    parser.add_argument("--mixed", action="store_true", help="every second socket selects only { id body }")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate (browsers do)")
    parser.add_argument("--client-procs", type=int, default=2, help="subscriber processes")
    parser.add_argument("--connect-batch", type=int, default=20, help="sockets opened at once per subscriber process")
    parser.add_argument("--connect-pause-ms", type=float, default=200.0,
                        help="pause after each batch, so the server authorises a few subscriptions at a time")
    parser.add_argument("--connect-timeout", type=float, default=60.0, help="seconds per socket handshake")
    parser.add_argument("--warmup-timeout", type=float, default=120.0,
                        help="seconds to wait for every socket to get a warm-up message")
    parser.add_argument("--settle", type=float, default=15.0,
                        help="stop waiting for deliveries after this many seconds without one")
    parser.add_argument("--server-workers", type=int, default=1, help="uvicorn --workers")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the server (repeatable), e.g. a chat rate limit")
    parser.add_argument("--port", type=int, default=8097, help="port for the API server this script starts")
    args = parser.parse_args(argv)
    if (min(args.subscribers) < 1 or args.messages < 1 or args.messages > 100_000 or args.client_procs < 1
            or args.connect_batch < 1 or args.server_workers < 1 or args.interval_ms < 0
            or args.publish_concurrency < 0 or args.connect_pause_ms < 0 or args.settle <= 0
            or any("=" not in kv for kv in args.server_env)):
        parser.error("--subscribers, --messages, --client-procs, --connect-batch, --server-workers >= 1; "
                     "--interval-ms, --publish-concurrency, --connect-pause-ms >= 0; --settle > 0; "
                     "--server-env KEY=VALUE")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
