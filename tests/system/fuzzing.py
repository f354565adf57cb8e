"""GraphQL fuzzing with schemathesis against a running Odim server ("Resilience").

Schemathesis generates queries and mutations for every root field of the schema (valid GraphQL,
arbitrary argument values: huge and negative ints, empty and odd strings, every enum value, real
and made-up ids); each generated case is sent over HTTP to ``/graphql`` as one role (anonymous,
customer, provider, admin) and its response is classified:

* a **5xx** is any HTTP status >= 500;
* an **unmasked error** is a top-level error without ``extensions.code`` raised while executing
  (it has a ``path``); GraphQL's own validation and syntax errors (no ``path``) are counted
  apart as ``GRAPHQL_VALIDATION``;
* an **internal error** is ``extensions.code == "INTERNAL_SERVER_ERROR"``: an unexpected exception
  that the server masked correctly, but still a bug the fuzzer found.

All three must be zero. ``tests/system/test_fuzz.py`` runs a short pass in ``make test``; ``make fuzz``
runs the long one (``python -m tests.system.fuzzing --cases 5000``, at least 5,000 generated cases).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

ROLES = ("anonymous", "customer", "provider", "admin")
# Every fuzz case comes from 127.0.0.1 with one of four accounts: the per-IP public rate limit
# (100/minute by default) and the per-IP and per-account ones would answer most cases with 429 or
# RATE_LIMITED and hide the resolvers from the fuzzer, so the fuzzed server runs with them raised.
# The limits themselves are proven by their own tests.
_UNLIMITED = "1000000/minute"
FUZZ_SERVER_ENV = {
    f"ODIM_RATE_LIMIT_{name}": _UNLIMITED
    for name in ("PUBLIC", "LOGIN", "LOGIN_IP", "REGISTER", "REGISTER_IP", "PASSWORD_RESET", "PASSWORD_RESET_IP",
                 "PURCHASE")
}


@dataclass
class Finding:
    """One response that broke a rule: which role sent which query, and what came back."""

    kind: str  # "5xx" | "unmasked" | "internal"
    role: str
    operation: str
    status: int
    query: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.role} {self.operation} HTTP {self.status}: {self.detail[:300]}\n    {self.query}"


@dataclass
class Report:
    """What a pass did: generated cases per role and operation, HTTP statuses, error codes
    (top-level ``extensions.code`` and payload ``errors[].code``), and the findings."""

    cases: Counter = field(default_factory=Counter)  # role -> cases sent
    operations: Counter = field(default_factory=Counter)  # operation label -> cases sent
    statuses: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    reminted: Counter = field(default_factory=Counter)  # operation label -> tokens replaced after it
    seconds: float = 0.0
    seed: int = 0

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)

    def summary(self) -> str:
        lines = [
            f"fuzz: {self.total} generated cases over {len(self.operations)} operations in {self.seconds:.1f} s "
            f"(seed {self.seed})",
            "cases per role: " + ", ".join(f"{role} {self.cases[role]}" for role in ROLES if role in self.cases),
            "HTTP statuses: " + ", ".join(f"{s} x{n}" for s, n in sorted(self.statuses.items())),
            f"5xx responses: {self.count('5xx')}",
            f"unmasked errors: {self.count('unmasked')}",
            f"INTERNAL_SERVER_ERROR (masked unexpected exceptions): {self.count('internal')}",
            "top error codes: " + ", ".join(f"{c} x{n}" for c, n in self.codes.most_common(15)),
        ]
        if self.reminted:
            lines.append("tokens re-minted after (the mutation ended the sign-in): "
                         + ", ".join(f"{op} x{n}" for op, n in self.reminted.items()))
        lines += [str(f) for f in self.findings[:50]]
        return "\n".join(lines)


def _payload_codes(value: Any) -> list[str]:
    """``code`` of every ``errors: [{code ...}]`` entry anywhere in ``data`` (mutation payloads)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "errors" and isinstance(item, list):
                found += [e["code"] for e in item if isinstance(e, dict) and isinstance(e.get("code"), str)]
            else:
                found += _payload_codes(item)
    elif isinstance(value, list):
        for item in value:
            found += _payload_codes(item)
    return found


def classify(report: Report, role: str, operation: str, query: str, status: int, text: str) -> None:
    """Count one response into ``report`` and record any finding (see the module docstring)."""
    report.cases[role] += 1
    report.operations[operation] += 1
    report.statuses[status] += 1
    short = " ".join(query.split())
    short = short if len(short) < 300 else short[:300] + "..."
    if status >= 500:
        report.findings.append(Finding("5xx", role, operation, status, short, text[:300]))
        return
    try:
        body = json.loads(text)
    except ValueError:
        report.findings.append(Finding("unmasked", role, operation, status, short, f"not JSON: {text[:200]}"))
        return
    if status == 429:
        report.codes["HTTP_429"] += 1
    errors = body.get("errors") or [] if isinstance(body, dict) else []
    for error in errors:
        code = (error.get("extensions") or {}).get("code")
        if code is None and "path" not in error:
            report.codes["GRAPHQL_VALIDATION"] += 1
        elif code is None:
            report.findings.append(Finding("unmasked", role, operation, status, short, error.get("message", "")))
        else:
            report.codes[code] += 1
            if code == "INTERNAL_SERVER_ERROR":
                report.findings.append(Finding("internal", role, operation, status, short, json.dumps(error)[:300]))
    if isinstance(body, dict):
        report.codes.update(_payload_codes(body.get("data")))


def encode_id(type_name: str, ident: int) -> str:
    return base64.b64encode(f"{type_name}:{ident}".encode()).decode()


def register_scalars(known_ids: list[str], node_types: list[str]) -> None:
    """Strategies for the scalars schemathesis does not know (``JSON``) and for ``ID``: a real
    object's global id half of the time (so mutations and lookups reach real rows), otherwise a
    raw number (huge and negative ones too), a global id of any Node type (or none) with a number
    or text inside, or any text."""
    import schemathesis
    from hypothesis import strategies as st
    from schemathesis.graphql import nodes

    type_names = st.sampled_from([*node_types, "Nope", ""])
    inner = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), st.text(max_size=12))
    made_up = st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.tuples(type_names, inner).map(lambda t: base64.b64encode(f"{t[0]}:{t[1]}".encode()).decode()),
        st.text(max_size=40),
    )
    ids = st.one_of(st.sampled_from(known_ids), made_up) if known_ids else made_up
    schemathesis.graphql.scalar("ID", ids.map(nodes.String))
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
        max_leaves=6,
    )
    schemathesis.graphql.scalar("JSON", json_values.map(lambda v: nodes.String(json.dumps(v))))
    # ``Upload`` only comes as a multipart file part (the GraphQL multipart request spec); inside a JSON
    # query any literal is "no file", which must be a typed error (uploadApplicationDocument).
    schemathesis.graphql.scalar("Upload", st.text(max_size=12).map(nodes.String))


def load_schema():
    """The schemathesis view of the schema the server serves (built from the code, so it is never
    stale and needs no introspection, which is admin-only)."""
    import schemathesis

    from schema import schema as odim_schema

    return schemathesis.graphql.from_file(odim_schema.as_str())


def _token_works(client: httpx.Client, token: str) -> bool:
    response = client.post("/graphql", json={"query": "{ me { id } }"}, headers={"Authorization": f"Bearer {token}"})
    try:
        return not response.json().get("errors")
    except ValueError:
        return False


def _batch(client: httpx.Client, report: Report, operation: str, strategy, role: str, token: str | None,
           examples: int) -> None:
    """``examples`` hypothesis examples of ``strategy`` sent as ``role``, each classified into ``report``."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @hypothesis_seed(report.seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=strategy)
    def send(case) -> None:
        try:
            response = client.post("/graphql", json={"query": case.body}, headers=headers)
        except httpx.HTTPError as exc:  # the server died or hung: as bad as a 5xx
            classify(report, role, operation, case.body, 599, f"{type(exc).__name__}: {exc}")
            return
        classify(report, role, operation, case.body, response.status_code, response.text)

    send()


def run(base_url: str, tokens: dict[str, str | None], *, cases: int, seed: int | None = None,
        known_ids: list[str] | None = None, operations: list[str] | None = None,
        remint: Callable[[str, int], str | None] | None = None,
        progress: Callable[[str], None] | None = None) -> Report:
    """Send about ``cases`` generated cases (spread evenly over every Query and Mutation field and
    every role in ``tokens``) to ``{base_url}/graphql`` and classify each response.

    Each (operation, role) pair gets ``ceil(cases / (operations x roles))`` hypothesis examples;
    operations with few possible inputs may produce fewer. Deterministic for a given ``seed``.
    A mutation that ends the caller's own sign-in (logout, password change) would turn the rest of
    the pass into UNAUTHENTICATED: after each batch the role's token is checked with ``me`` and
    replaced through ``remint(role, nth)`` when it stopped working (the next account of that role
    when the account itself is gone, e.g. deleted by the GDPR mutation)."""
    schema = load_schema()
    node_types = [t.name for t in schema.client_schema.get_possible_types(schema.client_schema.get_type("Node"))]
    register_scalars(known_ids or [], node_types)
    ops = [result.ok() for result in schema.get_all_operations()]
    if operations:
        ops = [op for op in ops if op.label.split(".", 1)[1] in operations]
    per_pair = max(1, math.ceil(cases / (len(ops) * len(tokens))))
    report = Report(seed=seed if seed is not None else random.randrange(2**32))
    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for op in ops:
            strategy = op.as_strategy()
            for role in list(tokens):
                token = tokens[role]
                _batch(client, report, op.label, strategy, role, token, per_pair)
                for nth in range(3):
                    if not token or remint is None or _token_works(client, token):
                        break
                    tokens[role] = token = remint(role, nth)
                    report.reminted[op.label] += 1
            if progress is not None:
                progress(f"{len(report.operations)}/{len(ops)} operations, {report.total} cases, "
                         f"{len(report.findings)} findings: {op.label}")
    report.seconds = time.monotonic() - started
    return report


# --- the long pass: `make fuzz` ------------------------------------------------------------------


SLOTS = """query($p: ID!, $s: ID!, $from: DateTime!, $to: DateTime!) {
  availableSlots(providerId: $p, serviceId: $s, from: $from, to: $to) { start } }"""
HOLD = "mutation($input: HoldSlotInput!) { holdSlot(input: $input) { booking { id } errors { code } } }"
PURCHASE = "mutation($input: PurchaseServiceInput!) { purchaseService(input: $input) { errors { code } } }"


async def seed_data() -> list[str]:
    """The demo marketplace (``odim seed``: an admin, a customer, 3 provider accounts, the catalogue,
    availability, payout destinations), two more customers and another admin, and over GraphQL
    (in process) a customer's purchase, a guest's purchase and a held booking. Returns the global
    ids of up to 5 rows of each Node table, for the fuzzer to hit real objects now and then."""
    from datetime import UTC, datetime, timedelta

    import httpx
    from sqlalchemy import text

    import server
    from devstack import seed as seed_module
    from models.db import session_scope
    from tests.support.factories import make_user
    from tests.support.graphql_client import gql

    await seed_module.seed_demo()
    for email, role in (("fuzz-c1@example.com", "customer"), ("fuzz-c2@example.com", "customer"),
                        ("fuzz-a1@example.com", "admin")):
        await make_user(email, role=role)
    async with session_scope() as session:
        provider_id, service_id, tier_id = (await session.execute(text(
            "SELECT p.id, s.id, t.id FROM providers p JOIN users u ON u.id = p.user_id "
            "JOIN services s ON s.category = ANY(p.categories) JOIN service_tiers t ON t.service_id = s.id "
            "ORDER BY p.id, s.id, t.position LIMIT 1"))).one()
    customer = await mint_token("customer")
    service, provider = encode_id("Service", service_id), encode_id("Provider", provider_id)
    tier = encode_id("ServiceTier", tier_id)
    now = datetime.now(UTC)
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://seed") as client:
        bought = [
            await gql(client, PURCHASE, {"input": {"serviceId": service, "tierId": tier, "idempotencyKey": "fuzz-seed-1"}}, token=customer),
            await gql(client, PURCHASE, {"input": {"serviceId": service, "tierId": tier, "customer": {
                "fullName": "Guest Buyer", "email": "guest@example.com", "phone": "+237671234567"}}}),
        ]
        slots = await gql(client, SLOTS, {"p": provider, "s": service, "from": now.isoformat(),
                                          "to": (now + timedelta(days=7)).isoformat()}, token=customer)
        held = await gql(client, HOLD, {"input": {"providerId": provider, "serviceId": service, "tierId": tier,
                                                  "start": slots["data"]["availableSlots"][0]["start"]}},
                         token=customer)
    for body in [*bought, held]:
        assert "errors" not in body and next(iter(body["data"].values()))["errors"] == [], body
    ids: list[str] = []
    tables = {"Provider": "providers", "Service": "services", "ServiceTier": "service_tiers", "User": "users",
              "ServiceRequest": "service_requests", "Booking": "bookings", "Ticket": "tickets",
              "Conversation": "conversations", "PayoutDestination": "payout_destinations", "Payout": "payouts"}
    async with session_scope() as session:
        for type_name, table in tables.items():
            rows = (await session.execute(text(f"SELECT id FROM {table} ORDER BY id LIMIT 5"))).scalars().all()
            ids += [encode_id(type_name, row) for row in rows]
    return ids


async def mint_token(role: str, nth: int = 0) -> str | None:
    """A fresh access token (a new sign-in session) for the ``nth`` seeded account of ``role`` (by
    id, wrapping around); admins' sessions count as MFA-verified. ``anonymous``: None."""
    from sqlalchemy import select

    from domain.identity.user import open_session
    from models import User
    from models.db import session_scope

    if role == "anonymous":
        return None
    async with session_scope() as session:
        users = (await session.execute(select(User).where(User.role == role).order_by(User.id))).scalars().all()
        user = users[nth % len(users)]
        pair = await open_session(session, user, mfa=role == "admin")
    return pair.access_token


def mint_token_sync(role: str, nth: int = 0) -> str | None:
    """``mint_token`` from synchronous code (the fuzz loop runs in a thread): its own loop and engine."""
    from models.db import dispose_engine

    async def go() -> str | None:
        try:
            return await mint_token(role, nth)
        finally:
            await dispose_engine()

    return asyncio.run(go())


async def _prepare() -> tuple[list[str], dict[str, str | None]]:
    """Empty tables and Redis (the test stack's), seed, mint tokens; one event loop for all of it."""
    import redis.asyncio as aioredis

    from models.db import dispose_engine, get_engine
    from settings import get_settings
    from tests.conftest import truncate_all

    async with get_engine().begin() as conn:
        await truncate_all(conn)
    client = aioredis.from_url(get_settings().redis_url)
    await client.flushdb()
    await client.aclose()
    try:
        return await seed_data(), {role: await mint_token(role) for role in ROLES}
    finally:
        await dispose_engine()


def _start_quietly(server, log_path: str | None) -> None:
    """Start ``server`` with its stdout and stderr going to ``log_path`` (it logs every GraphQL error
    with a stack trace): the child inherits file descriptors 1 and 2 while they point there."""
    if log_path is None:
        asyncio.run(server.start())
        return
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            asyncio.run(server.start())
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000, help="generated cases in all (at least; default 5000)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (random by default; printed)")
    parser.add_argument("--operation", action="append", help="only this root field (repeatable)")
    parser.add_argument("--server-log", default=None, help="write the server's output (stack traces) to this file")
    args = parser.parse_args()

    from tests.support.live_harness import Server

    ids, tokens = asyncio.run(_prepare())
    server = Server(**FUZZ_SERVER_ENV)
    _start_quietly(server, args.server_log)
    try:
        report = run(server.base, tokens, cases=args.cases, seed=args.seed, known_ids=ids, operations=args.operation,
                     remint=mint_token_sync, progress=lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        server.stop()
    print(report.summary())
    return 1 if report.findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
