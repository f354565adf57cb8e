"""The append-only audit log: the database refuses changes, money movements and admin
actions write rows, permission denials are recorded (HTTP and WebSocket), and admins read the log
through ``auditLog`` (filters, keyset pages, two statements) and the streamed CSV export."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError

import server
from domain.money import ledger
from domain.shared import audit
from models import AuditEntry, DeadLetter, LedgerTransaction
from models.db import get_engine, session_scope
from resolvers.ids import encode_id
from schema import schema
from schema.audit import admin_inputs
from settings import get_settings
from tests.support.factories import make_provider, make_user, token_for
from tests.support.graphql_client import error_codes, gql
from tests.support.live_harness import Server, Subscriber
from tests.support.statements import count_statements

ROOT = Path(__file__).resolve().parents[2]
CLEARING = ledger.gateway_clearing("sandbox", "XAF")
ESCROW = ledger.escrow(1, "XAF")

AUDIT_LOG = """
query($filter: AuditLogFilter, $first: Int, $after: String) {
  auditLog(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id action outcome actorId actorRole subjectType subjectId details } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""


async def rows(**where) -> list[AuditEntry]:
    """Every audit row (oldest first), optionally of one action."""
    async with session_scope() as s:
        stmt = select(AuditEntry).order_by(AuditEntry.id)
        for key, value in where.items():
            stmt = stmt.where(getattr(AuditEntry, key) == value)
        return list((await s.scalars(stmt)).all())


async def seed(*entries: dict) -> list[int]:
    """Insert audit rows (``record``'s keyword arguments, or with ``occurred_at`` a backdated row
    inserted as is); returns their ids, in order."""
    ids = []
    async with session_scope() as s:
        for e in entries:
            if "occurred_at" in e:
                await s.execute(insert(AuditEntry).values(**{k: v for k, v in e.items()}))
            else:
                await audit.record(s, **e)
            ids.append(await s.scalar(select(func.max(AuditEntry.id))))
    return ids


# --- append-only ------------------------------------------------------------------------------------


async def test_the_database_refuses_to_update_or_delete_audit_rows_even_with_raw_sql():
    # given: one audit row
    [ident] = await seed({"action": "auth.login.succeeded", "actor_id": 7, "actor_role": "customer"})

    # when: raw UPDATE and DELETE statements, including one that matches no row
    refusals = []
    for statement in ("UPDATE audit_log SET action = 'nothing.happened' WHERE id = :id",
                      "DELETE FROM audit_log WHERE id = :id", "DELETE FROM audit_log WHERE false"):
        with pytest.raises(DBAPIError) as refused:
            async with get_engine().begin() as conn:
                await conn.execute(text(statement), {"id": ident} if ":id" in statement else {})
        refusals.append((getattr(refused.value.orig, "sqlstate", None), "append-only" in str(refused.value)))

    # then: every one refused by the trigger (insufficient_privilege), the row unchanged
    assert refusals == [("42501", True)] * 3
    [row] = await rows()
    assert (row.id, row.action, row.actor_id) == (ident, "auth.login.succeeded", 7)


async def test_record_refuses_details_naming_personal_data_and_writes_nothing():
    # when / then
    async with session_scope() as s:
        with pytest.raises(audit.PersonalDataInAudit):
            await audit.record(s, action="auth.login.failed", details={"user": {"email": "ada@example.com"}})
        with pytest.raises(ValueError):
            await audit.record(s, action="auth.login.failed", outcome="maybe")
    await audit.record_detached(action="auth.login.failed", details={"phone": "+237671234567"})  # logs, never raises
    assert await rows() == []


async def test_record_takes_the_bound_request_metadata_until_reset():
    # given: metadata bound as the API does per operation
    token = audit.bind(request_id="req-1", ip="10.0.0.9", actor_id=42, actor_role="admin")
    try:
        async with session_scope() as s:
            await audit.record(s, action="auth.mfa.enrolled", subject_type="User", subject_id=42)
            await audit.record(s, action="auth.login.failed", outcome="failed", actor_id=None, actor_role=None)
    finally:
        audit.reset(token)
    await audit.record_detached(action="auth.password.reset", actor_id=5, actor_role="customer")

    # then
    assert [(r.action, r.outcome, r.actor_id, r.actor_role, str(r.ip) if r.ip else None, r.request_id,
             r.subject_type, r.subject_id) for r in await rows()] == [
        ("auth.mfa.enrolled", "ok", 42, "admin", "10.0.0.9", "req-1", "User", "42"),
        ("auth.login.failed", "failed", None, None, "10.0.0.9", "req-1", None, None),
        ("auth.password.reset", "ok", 5, "customer", None, None, None, None),
    ]


# --- money movements ----------------------------------------------------------------------------------


async def test_a_ledger_posting_writes_exactly_one_audit_row_in_its_transaction():
    # when
    async with session_scope() as s:
        txn = await ledger.post(s, "payment_captured", "payment_captured:pay_1", [(CLEARING, -11000), (ESCROW, 11000)])
        again = await ledger.post(s, "payment_captured", "payment_captured:pay_1", [(CLEARING, -11000), (ESCROW, 11000)])

    # then: one row for the one transaction (the idempotent repeat wrote nothing)
    assert again is None
    [row] = await rows()
    assert (row.action, row.outcome, row.subject_type, row.subject_id, row.actor_id) == (
        "money.payment_captured", "ok", "LedgerTransaction", str(txn.id), None)
    assert row.details == {
        "serviceRequestId": None, "amountsMinor": {"XAF": 11000},
        "legs": [{"account": "gateway_clearing:gateway:sandbox:XAF", "amountMinor": -11000},
                 {"account": "escrow:service_request:1:XAF", "amountMinor": 11000}],
    }


async def test_a_ledger_posting_that_rolls_back_leaves_no_audit_row():
    # when: the posting's transaction fails after posting, and a posting that would overdraw
    with pytest.raises(RuntimeError):
        async with session_scope() as s:
            await ledger.post(s, "payment_captured", "payment_captured:pay_2", [(CLEARING, -500), (ESCROW, 500)])
            raise RuntimeError("the business change failed")
    async with session_scope() as s:
        with pytest.raises(ledger.InsufficientFunds):
            await ledger.post(s, "escrow_released", "escrow_released:1", [(ESCROW, -500), (CLEARING, 500)])

    # then: no ledger transaction and no audit row
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(LedgerTransaction)) == 0
    assert await rows() == []


# --- admin actions -------------------------------------------------------------------------------------

DISCARD = "mutation($input: DiscardDeadLetterInput!) { discardDeadLetter(input: $input) { errors { code } } }"
VERIFY = "mutation($input: VerifyProviderInput!) { verifyProvider(input: $input) { provider { id } } }"


async def a_dead_letter() -> int:
    async with session_scope() as s:
        letter = DeadLetter(actor="send_refund", queue="payments", args={"refund_id": 1}, attempts=20, last_error="boom")
        s.add(letter)
        await s.flush()
        return letter.id


async def test_an_admin_mutation_writes_an_admin_row_with_its_outcome_and_input_ids(api_client):
    # given
    admin = await make_user("ops@example.com", role="admin")
    token = await token_for(admin)
    letter = await a_dead_letter()
    provider = await make_provider(verified=False)
    gid = encode_id("DeadLetter", letter)

    # when: a success, the same again (a typed payload error), and a success whose payload errors were not selected
    first = await gql(api_client, DISCARD, {"input": {"id": gid}}, token=token)
    second = await gql(api_client, DISCARD, {"input": {"id": gid}}, token=token)
    verified = await gql(api_client, VERIFY, {"input": {"providerId": encode_id("Provider", provider.id)}}, token=token)

    # then
    assert first == {"data": {"discardDeadLetter": {"errors": []}}}
    assert second == {"data": {"discardDeadLetter": {"errors": [{"code": "DEAD_LETTER_NOT_OPEN"}]}}}
    assert "errors" not in verified
    written = await rows()
    assert [(r.action, r.outcome, r.actor_id, r.actor_role, r.subject_type, r.subject_id, r.details) for r in written] == [
        ("admin.discardDeadLetter", "ok", admin.id, "admin", "DeadLetter", str(letter),
         {"input": {"input.id": gid}, "errorCodes": []}),
        ("admin.discardDeadLetter", "failed", admin.id, "admin", "DeadLetter", str(letter),
         {"input": {"input.id": gid}, "errorCodes": ["DEAD_LETTER_NOT_OPEN"]}),
        ("admin.verifyProvider", "ok", admin.id, "admin", "Provider", str(provider.id),
         {"input": {"input.providerId": encode_id("Provider", provider.id)}, "errorCodes": []}),
    ]
    assert [str(r.ip) for r in written] == ["127.0.0.1"] * 3
    assert len({r.request_id for r in written}) == 3 and all(written_row.request_id for written_row in written)


async def test_a_customer_calling_an_admin_mutation_is_denied_and_audited_but_no_admin_row(api_client):
    # given
    customer = await make_user("ada@example.com")
    letter = await a_dead_letter()

    # when
    body = await gql(api_client, DISCARD, {"input": {"id": encode_id("DeadLetter", letter)}},
                     token=await token_for(customer))

    # then
    assert error_codes(body) == ["FORBIDDEN"]
    assert [(r.action, r.outcome, r.actor_id, r.actor_role, r.details) for r in await rows()] == [
        ("authz.denied", "denied", customer.id, "customer",
         {"operation": "mutation", "path": "discardDeadLetter", "code": "FORBIDDEN", "transport": "http"}),
    ]
    async with session_scope() as s:
        assert (await s.get(DeadLetter, letter)).status == "open"


def test_admin_inputs_keep_ids_numbers_and_enums_never_free_text():
    # given: the refund mutation's input, with a free-text reason and an idempotency key
    field = schema._schema.mutation_type.fields["refundServiceRequest"]
    gid = encode_id("ServiceRequest", 9)

    # when
    kept = admin_inputs(field, {"input": {"serviceRequestId": gid, "amount": 2000, "reason": "Tap not replaced, "
                                          "call Ada on +237671234567", "idempotencyKey": "k-1"}})

    # then
    assert kept == {"input.serviceRequestId": gid, "input.amount": 2000}


# --- permission denials ---------------------------------------------------------------------------------


async def test_a_customer_and_an_anonymous_caller_asking_for_the_audit_log_are_refused_and_audited(api_client):
    # given
    customer = await make_user("ada@example.com")
    provider_user = await make_user("eko@example.com", role="provider")

    # when
    as_customer = await gql(api_client, "query Peek { auditLog { edges { node { id } } } }",
                            token=await token_for(customer))
    as_provider = await gql(api_client, AUDIT_LOG, token=await token_for(provider_user))
    anonymous = await gql(api_client, AUDIT_LOG)

    # then: FORBIDDEN / UNAUTHENTICATED, no data, one authz.denied row each
    assert (error_codes(as_customer), as_customer["data"]) == (["FORBIDDEN"], None)
    assert (error_codes(as_provider), error_codes(anonymous)) == (["FORBIDDEN"], ["UNAUTHENTICATED"])
    assert [(r.action, r.outcome, r.actor_id, r.actor_role, r.details) for r in await rows()] == [
        ("authz.denied", "denied", customer.id, "customer",
         {"operation": "Peek", "path": "auditLog", "code": "FORBIDDEN", "transport": "http"}),
        ("authz.denied", "denied", provider_user.id, "provider",
         {"operation": "query", "path": "auditLog", "code": "FORBIDDEN", "transport": "http"}),
        ("authz.denied", "denied", None, None,
         {"operation": "query", "path": "auditLog", "code": "UNAUTHENTICATED", "transport": "http"}),
    ]


async def test_a_successful_query_writes_no_audit_row(api_client):
    # given
    customer = await make_user("ada@example.com")

    # when
    body = await gql(api_client, "{ me { id } }", token=await token_for(customer))

    # then
    assert body == {"data": {"me": {"id": encode_id("User", customer.id)}}}
    assert await rows() == []


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["shared", "naive"])
async def test_a_refused_subscription_is_audited_on_both_websocket_paths(mode):
    # given: a real server (shared fan-out or Strawberry's own path)
    live = Server(ODIM_LIVE_FANOUT=mode)
    await live.start()
    try:
        # when: an anonymous socket subscribes to the notification feed
        sub = Subscriber(live, "subscription Feed { notificationAdded { id } }", {}).start()
        await asyncio.wait_for(sub.task, 10)
    finally:
        live.stop()

    # then: refused with UNAUTHENTICATED, and audited once
    assert [e["extensions"]["code"] for e in sub.frames[0]["payload"]["errors"]] == ["UNAUTHENTICATED"]
    assert [(r.action, r.outcome, r.actor_id, str(r.ip), r.details) for r in await rows()] == [
        ("authz.denied", "denied", None, "127.0.0.1",
         {"operation": "Feed", "path": "notificationAdded", "code": "UNAUTHENTICATED", "transport": "ws"}),
    ]


# --- auditLog: filters, pages, statements ------------------------------------------------------------------


async def an_admin() -> str:
    return await token_for(await make_user("ops@example.com", role="admin"))


async def test_audit_log_filters_combine_and_match_exactly(api_client):
    # given
    token = await an_admin()
    now = datetime.now(UTC)
    a, b, c, d, e = await seed(
        {"action": "money.payment_captured", "subject_type": "LedgerTransaction", "subject_id": 1, "actor_id": None},
        {"action": "money.refund_sent", "subject_type": "LedgerTransaction", "subject_id": 2, "actor_id": None},
        {"action": "admin.verifyProvider", "actor_id": 7, "actor_role": "admin", "subject_type": "Provider",
         "subject_id": 3},
        {"action": "admin.verifyProvider", "actor_id": 8, "actor_role": "admin", "outcome": "failed",
         "occurred_at": now - timedelta(days=2)},
        {"action": "money_x.other", "actor_id": None},  # "money_" must not match the prefix "money."
    )

    async def ids(filter_: dict) -> list[int]:
        body = await gql(api_client, AUDIT_LOG, {"filter": filter_, "first": 100}, token=token)
        assert "errors" not in body, body
        return [_decode(edge["node"]["id"]) for edge in body["data"]["auditLog"]["edges"]]

    # when / then (newest first)
    assert await ids({}) == [e, d, c, b, a]
    assert await ids({"actionPrefix": "money."}) == [b, a]
    assert await ids({"action": "admin.verifyProvider"}) == [d, c]
    assert await ids({"actorId": encode_id("User", 7)}) == [c]
    assert await ids({"actorId": "8"}) == [d]
    assert await ids({"subjectType": "LedgerTransaction", "subjectId": "2"}) == [b]
    assert await ids({"outcome": "FAILED"}) == [d]
    assert await ids({"from": (now - timedelta(days=1)).isoformat()}) == [e, c, b, a]
    assert await ids({"to": (now - timedelta(days=1)).isoformat()}) == [d]
    assert await ids({"actionPrefix": "admin.", "outcome": "OK"}) == [c]
    bad = await gql(api_client, AUDIT_LOG, {"filter": {"from": now.isoformat(), "to": now.isoformat()}}, token=token)
    assert (error_codes(bad), bad["errors"][0]["extensions"]["field"]) == (["INVALID"], "from")


def _decode(global_id: str) -> int:
    import base64

    kind, _, ident = base64.b64decode(global_id).decode().partition(":")
    assert kind == "AuditEntry"
    return int(ident)


async def test_audit_log_pages_by_keyset_newest_first_in_two_statements(api_client):
    # given: five rows
    token = await an_admin()
    ids = await seed(*({"action": "auth.login.succeeded", "actor_id": n} for n in range(5)))

    # when: pages of two
    seen, after, pages = [], None, 0
    while True:
        with count_statements() as statements:
            body = await gql(api_client, AUDIT_LOG, {"first": 2, "after": after}, token=token)
        pages += 1
        connection = body["data"]["auditLog"]
        seen += [_decode(edge["node"]["id"]) for edge in connection["edges"]]
        # then: the viewer and the page, nothing else (and no audit row for a successful read)
        assert len(statements) == 2, statements
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert (seen, pages) == (list(reversed(ids)), 3)
    assert len(await rows()) == 5
    bad = await gql(api_client, AUDIT_LOG, {"after": "not-a-cursor"}, token=token)
    assert error_codes(bad) == ["INVALID_CURSOR"]


# --- CSV export --------------------------------------------------------------------------------------------


async def asgi_get(path: str, query: str, token: str | None) -> tuple[int, dict[str, str], list[bytes]]:
    """Call the ASGI app directly and keep every ``http.response.body`` message (httpx would join them)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"test")] + ([(b"authorization", f"Bearer {token}".encode())] if token else []),
        "client": ("127.0.0.1", 50000), "server": ("test", 80),
    }
    messages: list[dict] = []
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        messages.append(message)

    await server.app(scope, receive, send)
    start = messages[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, [m.get("body", b"") for m in messages[1:]]


async def test_the_csv_export_streams_the_filtered_rows_in_batches_and_defuses_formulas(monkeypatch):
    # given: three money rows (one with a formula-like subject id), one other row, batches of two rows
    token = await an_admin()
    monkeypatch.setattr(get_settings(), "audit_export_batch_rows", 2)
    a, b, c, _ = await seed(
        {"action": "money.payment_captured", "subject_type": "LedgerTransaction", "subject_id": 1, "actor_id": None,
         "details": {"amountsMinor": {"XAF": 11000}}},
        {"action": "money.refund_sent", "subject_type": "LedgerTransaction", "subject_id": "=HYPERLINK(\"x\")",
         "actor_id": None},
        {"action": "money.payout_sent", "actor_id": 3, "actor_role": "admin", "subject_type": "Payout",
         "subject_id": "-5"},
        {"action": "auth.login.failed", "outcome": "failed", "actor_id": None},
    )

    # when
    status, headers, chunks = await asgi_get("/admin/audit.csv", "actionPrefix=money.", token)

    # then: streamed (no Content-Length): the header, one chunk per two rows, the closing empty body
    assert (status, headers["content-type"], "content-length" in headers) == (200, "text/csv; charset=utf-8", False)
    assert [chunk.count(b"\n") for chunk in chunks] == [1, 2, 1, 0]
    table = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert table[0] == list(audit.CSV_COLUMNS)
    assert [(r[0], r[2], r[3], r[4], r[5], r[8], r[9], r[10]) for r in table[1:]] == [
        (str(c), "money.payout_sent", "ok", "3", "admin", "Payout", "'-5", "{}"),
        (str(b), "money.refund_sent", "ok", "", "", "LedgerTransaction", "'=HYPERLINK(\"x\")", "{}"),
        (str(a), "money.payment_captured", "ok", "", "", "LedgerTransaction", "1", '{"amountsMinor":{"XAF":11000}}'),
    ]
    # and the export itself is audited
    [exported] = await rows(action="admin.exportAuditLog")
    assert (exported.actor_role, exported.details) == ("admin", {"filter": {"action_prefix": "money."}})


async def test_the_csv_export_is_refused_to_non_admins_and_refusals_are_audited(api_client):
    # given
    customer = await make_user("ada@example.com")
    await seed({"action": "money.payment_captured", "actor_id": None})

    # when
    as_customer = await api_client.get("/admin/audit.csv", headers={"Authorization": f"Bearer {await token_for(customer)}"})
    anonymous = await api_client.get("/admin/audit.csv")

    # then: 403 and 401, no CSV, one authz.denied each
    assert (as_customer.status_code, anonymous.status_code) == (403, 401)
    assert "money.payment_captured" not in as_customer.text + anonymous.text
    assert [(r.actor_id, r.details["code"], r.details["operation"]) for r in await rows(action="authz.denied")] == [
        (customer.id, "FORBIDDEN", "GET /admin/audit.csv"), (None, "UNAUTHENTICATED", "GET /admin/audit.csv")]


async def test_the_csv_export_rejects_a_bad_filter_with_400(api_client):
    # given
    token = await an_admin()

    # when
    response = await api_client.get("/admin/audit.csv?outcome=maybe", headers={"Authorization": f"Bearer {token}"})

    # then
    assert (response.status_code, response.json()["code"], response.json()["field"]) == (400, "INVALID", "outcome")
    assert await rows(action="admin.exportAuditLog") == []


async def test_the_cli_exports_the_same_csv_as_the_api(tmp_path, api_client):
    # given
    token = await an_admin()
    await seed(
        {"action": "money.payment_captured", "subject_type": "LedgerTransaction", "subject_id": 1, "actor_id": None},
        {"action": "auth.login.failed", "outcome": "failed", "actor_id": None},
        {"action": "money.refund_sent", "subject_type": "LedgerTransaction", "subject_id": 2, "actor_id": None},
    )
    out = tmp_path / "audit.csv"

    # when
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "cli", "audit", "export", "--out", str(out), "--action-prefix", "money."],
        cwd=ROOT, capture_output=True, text=True,
    )
    from_api = await api_client.get("/admin/audit.csv?actionPrefix=money.", headers={"Authorization": f"Bearer {token}"})

    # then
    assert done.returncode == 0, done.stderr
    assert "2 row(s)" in done.stdout
    assert out.read_bytes() == from_api.content
    assert [json.dumps(r.details, sort_keys=True) for r in await rows(action="admin.exportAuditLog")] == [
        json.dumps({"filter": {"action_prefix": "money."}, "transport": "cli"}, sort_keys=True),
        json.dumps({"filter": {"action_prefix": "money."}}, sort_keys=True),
    ]


def test_csv_cells_defuse_formula_text_but_keep_numbers_numbers():
    from decimal import Decimal

    from domain.shared.audit import csv_cell

    assert [csv_cell(v) for v in ("=1+1", "-2+3", "+x", "@SUM(A1)", "\tx", "plain", "")] == [
        "'=1+1", "'-2+3", "'+x", "'@SUM(A1)", "'\tx", "plain", ""]
    assert [csv_cell(v) for v in (-11000, 0, -2.5, Decimal("-3.10"), None)] == ["-11000", "0", "-2.5", "-3.10", ""]
