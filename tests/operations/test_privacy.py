"""A customer's data export and erasure (domain/operations/privacy.py over GraphQL), and no personal data in
the logs of a whole journey ("Data protection and audit").

In-process API (``api_client``), real PostgreSQL, Redis, SMTP sink and Dramatiq worker; payments
are paid the real way through the sandbox's signed webhook (tests/orders/test_api_money.py helpers)."""

from __future__ import annotations

import json
import logging
import traceback

import pytest
import structlog
from sqlalchemy import func, select, text

from domain.identity.user import find_by_email
from models import AuditEntry, ChatMessage, Email, Notification, ServiceRequest, User
from models.crypto import ENCRYPTED_COLUMNS, decrypt
from models.db import session_scope
from resolvers.ids import encode_id
from tests.orders.test_api_money import GUEST, World, buy, complete_by_admin, pay, request_id
from tests.support.factories import make_provider, make_service, make_user
from tests.support.graphql_client import error_codes, gql, login


@pytest.fixture
async def world(api_client) -> World:
    """tests/orders/test_api_money.py's world: a 10,000 FCFA service, an admin, Ada and Ben, a provider."""
    service, tiers = await make_service(name="Leak repair", tiers=1, prices={"XAF": 10000})
    await make_user("ops@example.com", role="admin", full_name="Odim Ops")
    await make_user("ada@example.com", full_name="Ada Eko", phone="+237670001122")
    await make_user("ben@example.com", full_name="Ben Nji")
    pro = await make_user("pro@example.com", role="provider", full_name="Paul Eko")
    provider = await make_provider(display_name="Eko Plumbing", user_id=pro.id)
    tokens = [await login(api_client, f"{name}@example.com") for name in ("ops", "ada", "ben", "pro")]
    return World(service.id, tiers[0].id, provider.id, *tokens)


EXPORT = "query { myDataExport }"
ADMIN_EXPORT = "query($id: ID!) { customerDataExport(userId: $id) }"
DELETE_MINE = """
mutation($input: DeleteMyAccountInput!) {
  deleteMyAccount(input: $input) {
    deletion { serviceRequests bookings tickets messages emails sessionsEnded }
    errors { field code message }
  }
}
"""
DELETE_CUSTOMER = """
mutation($input: DeleteCustomerAccountInput!) {
  deleteCustomerAccount(input: $input) {
    deletion { serviceRequests bookings tickets messages emails sessionsEnded }
    errors { field code message }
  }
}
"""
CONVERSATION = "query($r: String!) { serviceRequest(reference: $r) { conversation { id } } }"
SEND = """mutation($input: SendChatMessageInput!) { sendChatMessage(input: $input) { errors { code } } }"""
ME = "query { me { id email } }"


async def account(email: str) -> User:
    async with session_scope() as s:
        return await find_by_email(s, email)


async def say(client, token: str, reference: str, body: str) -> None:
    conversation = (await gql(client, CONVERSATION, {"r": reference}, token=token))["data"]["serviceRequest"]["conversation"]
    sent = await gql(client, SEND, {"input": {"conversationId": conversation["id"], "body": body}}, token=token)
    assert sent["data"]["sendChatMessage"]["errors"] == []


async def completed_order(client, w: World, token: str | None = None, **extra) -> str:
    """A paid order taken to completed by an admin (escrow released); returns its reference."""
    payload = await buy(client, w, token if token is not None else w.ada, **extra)
    await pay(client, payload["checkoutUrl"])
    reference = payload["serviceRequest"]["reference"]
    await complete_by_admin(w, await request_id(reference))
    return reference


# --- export ---------------------------------------------------------------------------------------


async def test_a_customer_exports_her_account_orders_payments_messages_and_emails_without_secrets(api_client, world):
    # given: Ada's own order (paid, with a chat message) and a guest order bought with her address
    own = await completed_order(api_client, world)
    await say(api_client, world.ada, own, "The sink is in the kitchen.")
    guest = (await buy(api_client, world, None, customer={**GUEST, "email": "ADA@example.com"}))["serviceRequest"]
    # when
    body = await gql(api_client, EXPORT, token=world.ada)
    # then
    data = body["data"]["myDataExport"]
    ada = await account("ada@example.com")
    assert data["format"] == "odim.customer-data/1"
    assert data["account"] == {"id": ada.id, "email": "ada@example.com", "fullName": "Ada Eko", "phone": "+237670001122",
                               "role": "customer", "createdAt": ada.created_at.isoformat(), "emailVerifiedAt": None,
                               "mfaEnabled": False}
    assert [(r["reference"], r["boughtAs"], r["status"]) for r in data["serviceRequests"]] == [
        (own, "account", "completed"), (guest["reference"], "guest", "awaiting_payment")]
    assert data["serviceRequests"][1]["customer"] == {"fullName": "Bob Guest", "email": "ADA@example.com",
                                                      "phone": "+237699123456"}
    assert [s["to"] for s in data["serviceRequests"][0]["statusHistory"]] == [
        "awaiting_payment", "payment_confirmed", "pending_contact", "team_assigned", "in_progress", "completed"]
    assert [(p["order"], p["status"], p["amountMinor"]) for p in data["payments"]] == [
        (own, "completed", 10000), (guest["reference"], "pending", 11000)]
    assert [(m["fromMe"], m["body"]) for m in data["messages"]] == [(True, "The sink is in the kitchen.")]
    assert {e["to"] for e in data["emails"]} == {"ada@example.com"}  # the guest order is not paid: no mail yet
    assert data["emailPreferences"] == {"optedOut": False, "kinds": {}}
    assert len(data["sessions"]) == 1
    # and: no secret of any kind
    dumped = json.dumps(data)
    assert "argon2" not in dumped and "password" not in dumped.lower()
    assert "mfaSecret" not in dumped and "tokenHash" not in dumped


async def test_exports_are_for_the_customer_herself_and_for_admins_only(api_client, world):
    # given
    ada, pro = await account("ada@example.com"), await account("pro@example.com")
    # when / then: anonymous, provider, another customer
    assert error_codes(await gql(api_client, EXPORT)) == ["UNAUTHENTICATED"]
    assert error_codes(await gql(api_client, EXPORT, token=world.pro)) == ["FORBIDDEN"]
    assert error_codes(await gql(api_client, ADMIN_EXPORT, {"id": encode_id("User", ada.id)}, token=world.ben)) == [
        "FORBIDDEN"]
    # then: an admin reads Ada's, and gets null for a provider's account
    by_admin = await gql(api_client, ADMIN_EXPORT, {"id": encode_id("User", ada.id)}, token=world.admin)
    assert by_admin["data"]["customerDataExport"]["account"]["email"] == "ada@example.com"
    assert (await gql(api_client, ADMIN_EXPORT, {"id": encode_id("User", pro.id)}, token=world.admin))["data"] == {
        "customerDataExport": None}
    # and: each export is audited without personal data
    async with session_scope() as s:
        rows = (await s.execute(select(AuditEntry.action, AuditEntry.subject_id, AuditEntry.details)
                                .where(AuditEntry.action == "privacy.export"))).all()
    assert [tuple(r) for r in rows] == [("privacy.export", str(ada.id), {"by": "admin"})]


# --- erasure --------------------------------------------------------------------------------------


async def snapshot() -> dict:
    async with session_scope() as s:
        return {
            "users": await s.scalar(select(func.count()).select_from(User)),
            "ledger": (await s.execute(text("SELECT * FROM ledger_entries ORDER BY id"))).all(),
            "audit": (await s.execute(text("SELECT * FROM audit_log ORDER BY id"))).all(),
            "money": (await s.execute(text(
                "SELECT id, amount_minor, price_minor, captured_minor, refunded_minor, settled_provider_minor, "
                "settled_platform_minor, currency, status FROM service_requests ORDER BY id"))).all(),
        }


async def test_deleting_an_account_is_refused_while_an_order_is_open_and_nothing_changes(api_client, world):
    # given: a paid order not finished yet
    payload = await buy(api_client, world, world.ada)
    await pay(api_client, payload["checkoutUrl"])
    before = await snapshot()
    # when
    body = await gql(api_client, DELETE_MINE, {"input": {"password": "correct-horse-battery"}}, token=world.ada)
    # then
    reference = payload["serviceRequest"]["reference"]
    assert body["data"]["deleteMyAccount"] == {"deletion": None, "errors": [{
        "field": None, "code": "OPEN_ORDERS",
        "message": f"Finish or cancel these first (orders, bookings or tickets still open or disputed): {reference}"}]}
    assert await snapshot() == before
    assert (await account("ada@example.com")).full_name == "Ada Eko"
    assert (await gql(api_client, ME, token=world.ada))["data"]["me"]["email"] == "ada@example.com"


async def test_deleting_an_account_needs_its_password(api_client, world):
    before = await snapshot()
    body = await gql(api_client, DELETE_MINE, {"input": {"password": "not-my-password"}}, token=world.ada)
    assert body["data"]["deleteMyAccount"] == {"deletion": None, "errors": [
        {"field": "password", "code": "INVALID_CREDENTIALS", "message": "Password is incorrect"}]}
    assert await snapshot() == before


async def test_a_customer_deletes_her_account_personal_data_goes_money_and_audit_stay(api_client, world):
    # given: a completed order with a chat message, a guest order with her address, emails sent
    own = await completed_order(api_client, world)
    await say(api_client, world.ada, own, "Call me on +237 6 70 00 11 22")
    await completed_order(api_client, world, token=None, customer={**GUEST, "email": "ada@example.com"})
    ada = await account("ada@example.com")
    before = await snapshot()
    # when
    body = await gql(api_client, DELETE_MINE, {"input": {"password": "correct-horse-battery"}}, token=world.ada)
    # then: the payload counts what was anonymised
    assert body["data"]["deleteMyAccount"]["errors"] == []
    deletion = body["data"]["deleteMyAccount"]["deletion"]
    assert {k: deletion[k] for k in ("serviceRequests", "bookings", "tickets", "messages", "sessionsEnded")} == {
        "serviceRequests": 2, "bookings": 0, "tickets": 0, "messages": 1, "sessionsEnded": 1}
    assert deletion["emails"] > 0
    # then: the account is anonymised and cannot sign in any more, its token is dead
    async with session_scope() as s:
        user = await s.get(User, ada.id)
        assert (user.full_name, user.email, user.phone, user.password_hash) == (
            "Deleted user", f"deleted-{ada.id}@deleted.invalid", None, "!deleted")
        assert user.deleted_at is not None
        orders = (await s.execute(select(ServiceRequest.customer_name, ServiceRequest.customer_email,
                                         ServiceRequest.customer_phone, ServiceRequest.requirements)
                                  .order_by(ServiceRequest.id))).all()
        assert [tuple(o) for o in orders] == [("Deleted user", f"deleted-{ada.id}@deleted.invalid", None, "")] * 2
        assert (await s.scalars(select(ChatMessage.body))).all() == ["(deleted)"]
        assert await s.scalar(select(func.count()).select_from(Notification).where(Notification.user_id == ada.id)) == 0
        assert set((await s.scalars(select(Email.body_text).where(Email.user_id == ada.id))).all()) == {""}
    assert error_codes(await gql(api_client, ME, token=world.ada)) == ["UNAUTHENTICATED"]
    relogin = await gql(api_client, "mutation { login(input: {email: \"ada@example.com\", password: "
                        "\"correct-horse-battery\"}) { errors { code } } }")
    assert relogin["data"]["login"]["errors"] == [{"code": "INVALID_CREDENTIALS"}]
    # then: ledger, orders' money and earlier audit rows are exactly as they were; one audit row added
    after = await snapshot()
    assert (after["ledger"], after["money"], after["users"]) == (before["ledger"], before["money"], before["users"])
    assert after["audit"][: len(before["audit"])] == before["audit"]
    async with session_scope() as s:
        added = (await s.execute(select(AuditEntry.action, AuditEntry.subject_id, AuditEntry.details)
                                 .where(AuditEntry.id > (before["audit"][-1].id if before["audit"] else 0),
                                        AuditEntry.action.like("privacy.%")))).all()
    assert [tuple(a) for a in added] == [("privacy.account.deleted", str(ada.id), {
        "by": "self", "requests": 2, "bookings": 0, "tickets": 0, "messages": 1, "mails": deletion["emails"],
        "sessions": 1, "documents": 0})]
    # then: no encrypted value anywhere still holds her address or phone
    async with session_scope() as s:
        for table, column in ENCRYPTED_COLUMNS:
            for stored in (await s.scalars(text(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"))).all():
                plain = decrypt(stored, f"{table}.{column}").lower()
                assert "ada@example.com" not in plain and "670001122" not in plain, (table, column)
    # and: the address is free for a new account
    again = await gql(api_client, """mutation { register(input: {email: "ada@example.com", password: "a-long-password",
        fullName: "Ada Again"}) { errors { code } } }""")
    assert again["data"]["register"]["errors"] == []


async def test_an_admin_deletes_a_customer_but_not_a_provider_nor_twice_and_customers_cannot(api_client, world):
    ben, pro = await account("ben@example.com"), await account("pro@example.com")
    # when: a customer tries
    denied = await gql(api_client, DELETE_CUSTOMER, {"input": {"userId": encode_id("User", ben.id)}}, token=world.ada)
    assert error_codes(denied) == ["FORBIDDEN"]
    assert (await account("ben@example.com")).full_name == "Ben Nji"
    # when: an admin deletes a provider's account
    body = await gql(api_client, DELETE_CUSTOMER, {"input": {"userId": encode_id("User", pro.id)}}, token=world.admin)
    assert body["data"]["deleteCustomerAccount"] == {"deletion": None, "errors": [{
        "field": "userId", "code": "NOT_A_CUSTOMER", "message": "Only customer accounts can be exported or deleted here"}]}
    # when: an admin deletes Ben, twice
    first = await gql(api_client, DELETE_CUSTOMER, {"input": {"userId": encode_id("User", ben.id)}}, token=world.admin)
    second = await gql(api_client, DELETE_CUSTOMER, {"input": {"userId": encode_id("User", ben.id)}}, token=world.admin)
    # then
    assert first["data"]["deleteCustomerAccount"] == {"deletion": {
        "serviceRequests": 0, "bookings": 0, "tickets": 0, "messages": 0, "emails": 0, "sessionsEnded": 1}, "errors": []}
    assert second["data"]["deleteCustomerAccount"]["errors"] == [
        {"field": None, "code": "ACCOUNT_DELETED", "message": "This account has already been deleted"}]
    assert await account("ben@example.com") is None
    assert error_codes(await gql(api_client, ME, token=world.ben)) == ["UNAUTHENTICATED"]


async def test_an_opt_out_outlives_the_account_by_its_blind_index_only(api_client, world):
    # given: Ada opted out of non-transactional email
    opted = await gql(api_client, "mutation { setEmailOptOut(input: {optOut: true}) { errors { code } } }",
                      token=world.ada)
    assert opted["data"]["setEmailOptOut"]["errors"] == []
    # when: she deletes her account
    await gql(api_client, DELETE_MINE, {"input": {"password": "correct-horse-battery"}}, token=world.ada)
    # then: the suppression row keeps its key (the HMAC of the address), the address itself is gone
    async with session_scope() as s:
        rows = (await s.execute(text("SELECT address, address_bidx, source FROM email_suppressions"))).all()
    from models.crypto import blind_index

    assert [tuple(r) for r in rows] == [(None, blind_index("ada@example.com", "email"), "account")]


# --- no personal data in logs ------------------------------------------------------------------------


class LogSink:
    """Every structlog event as it reaches the renderer (after every other processor) and every
    stdlib record, as text (tracebacks included)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, logger, method: str, event_dict: dict) -> dict:
        line = repr(event_dict)
        exc = event_dict.get("exc_info")
        if isinstance(exc, BaseException):
            line += "".join(traceback.format_exception(exc))
        self.lines.append(line)
        return event_dict


async def test_a_whole_journey_logs_none_of_the_emails_or_phone_numbers(api_client, world, caplog):
    # given: structlog's processor chain with a sink just before the renderer, and stdlib capture
    processors = structlog.get_config()["processors"]
    sink = LogSink()
    processors.insert(len(processors) - 1, sink)
    caplog.set_level(logging.DEBUG)
    try:
        # when: register, a failed login, a bad request with an email in it, purchases as customer and
        # guest paid by webhook, chat, status changes and the emails the worker sends
        reg = await gql(api_client, """mutation { register(input: {email: "carla.leak@example.org",
            password: "a-long-password", fullName: "Carla Leak", phone: "+237 6 77 88 99 00"}) { token errors { code } } }""")
        assert reg["data"]["register"]["errors"] == []
        carla = reg["data"]["register"]["token"]
        failed = await gql(api_client, "mutation { login(input: {email: \"carla.leak@example.org\", "
                           "password: \"wrong-password\"}) { errors { code } } }")
        assert failed["data"]["login"]["errors"] == [{"code": "INVALID_CREDENTIALS"}]
        bad = await gql(api_client, "mutation($i: RegisterInput!) { register(input: $i) { errors { code } } }",
                        {"i": {"email": "carla.leak@example.org", "password": 12345, "fullName": "X"}})
        assert error_codes(bad) == ["BAD_USER_INPUT"] or "errors" in bad
        own = await completed_order(api_client, world, token=carla)
        await say(api_client, carla, own, "Hello")
        await completed_order(api_client, world, token=None)  # as the guest Bob
        await login(api_client, "pro@example.com")
    finally:
        processors.remove(sink)
    # then: something was logged, and none of it names a seeded address or phone number
    records = [r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
               for r in caplog.records]
    logged = "\n".join(sink.lines + records)
    assert len(sink.lines) > 0  # the chain did run through the sink
    personal = ["carla.leak@example.org", "ada@example.com", "ben@example.com", "pro@example.com", "ops@example.com",
                "bob@example.com", "+237677889900", "677889900", "+237670001122", "670001122", "+237671234567", "671234567", "+237699123456",
                "699123456", "Carla Leak"]
    assert [p for p in personal if p.lower() in logged.lower()] == []
