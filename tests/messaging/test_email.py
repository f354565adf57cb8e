"""Email that is never dropped, against a real SMTP server and a real Dramatiq worker.

Each test starts its own SMTP server (aiosmtpd, on a free port) and points settings.smtp_port at
it; the ``send_email`` actor runs on the Redis broker with its real retries (backoff shortened to
tens of milliseconds for the test). Covered: a relay refusing the first two attempts (421) then
accepting; a relay down for good (dead letter, then an admin replay); preferences and opt-out
(suppressed mail is stored, never sent; transactional mail cannot be turned off); the RFC 8058
one-click unsubscribe; HTML escaping of user text; the provider-assignment emails.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import jinja2.meta
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, update

import workers.notification
from domain.messaging import notification
from domain.orders import service_request as sr
from domain.orders.service_request import CustomerDetails, purchase_service
from domain.shared import dead_letter, outbox
from models import (
    DeadLetter,
    Email,
    EmailDelivery,
    EmailSuppression,
    NotificationPreference,
    OutboxMessage,
    ServiceRequest,
)
from models.db import session_scope
from resolvers.ids import encode_id
from settings import get_settings
from tests.support.factories import make_provider, make_service, make_user, run_worker
from tests.support.graphql_client import error_codes, gql, login

# --- a real SMTP relay ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Relay:
    """aiosmtpd handler: refuses the first ``refuse_first`` MAIL commands with 421 (RFC 5321
    "service not available"), accepts the rest and keeps the parsed messages."""

    port: int
    refuse_first: int = 0
    mail_commands: int = 0
    received: list[EmailMessage] = field(default_factory=list)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # aiosmtpd hook
        self.mail_commands += 1
        if self.mail_commands <= self.refuse_first:
            return "421 4.3.2 Service not available, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 2.0.0 Ok: queued"


@contextmanager
def smtp_port(port: int) -> Iterator[None]:
    """Point settings.smtp_port at ``port`` (the worker reads the settings on every send)."""
    before = os.environ.get("ODIM_SMTP_PORT")
    os.environ["ODIM_SMTP_PORT"] = str(port)
    get_settings.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ODIM_SMTP_PORT", None)
        else:
            os.environ["ODIM_SMTP_PORT"] = before
        get_settings.cache_clear()


@contextmanager
def running_relay(refuse_first: int = 0) -> Iterator[Relay]:
    handler = Relay(port=free_port(), refuse_first=refuse_first)
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        with smtp_port(handler.port):
            yield handler
    finally:
        controller.stop()


@pytest.fixture
def relay() -> Iterator[Relay]:
    with running_relay() as handler:
        yield handler


@pytest.fixture
def fast_retries(monkeypatch) -> None:
    """The real actor and retry count, with the backoff shortened from minutes to milliseconds."""
    options = workers.notification.send_email.options
    monkeypatch.setitem(options, "min_backoff", 20)
    monkeypatch.setitem(options, "max_backoff", 200)


# --- helpers --------------------------------------------------------------------------------------

RECEIPT = {
    "name": "Ada Nkem", "amount": "11,000 FCFA", "service": "Leak repair", "tier": "Basic",
    "reference": "ODM-TEST-0001", "status_label": "Payment confirmed", "next_step": "We will call you.",
    "tracking_url": "http://127.0.0.1/track/ODM-TEST-0001?token=t",
}


def status_context(note: str = "") -> dict:
    return {"name": "Ada Nkem", "reference": "ODM-TEST-0001", "status_label": "Work in progress",
            "next_step": "The team is on it.", "note": note, "tracking_url": "http://127.0.0.1/track/ODM-TEST-0001"}


async def queue(kind: str, to: str, template: str, context: dict, key: str) -> int | None:
    async with session_scope() as s:
        return await notification.queue_email(s, dedupe_key=key, kind=kind, to=to, template=template, context=context)


async def queue_receipt(to: str = "ada@example.cm", key: str = "receipt:1") -> int:
    email_id = await queue("payment_confirmed", to, "payment_confirmed", RECEIPT, key)
    assert email_id is not None
    return email_id


async def deliver() -> None:
    """Dispatch the outbox to Redis and run a real worker until the notification queue (retries
    included) is empty."""
    await outbox.relay()
    await run_worker()


async def email_row(email_id: int) -> Email:
    async with session_scope() as s:
        return await s.get(Email, email_id)


async def log_of(email_id: int) -> list[tuple]:
    async with session_scope() as s:
        rows = (await s.scalars(select(EmailDelivery).where(EmailDelivery.email_id == email_id)
                                .order_by(EmailDelivery.id))).all()
    return [(r.attempt, r.outcome, r.smtp_message_id, r.smtp_response, r.error) for r in rows]


async def all_rows(model) -> list:
    async with session_scope() as s:
        return list((await s.scalars(select(model))).all())


async def send_jobs() -> int:
    async with session_scope() as s:
        return await s.scalar(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.target == "send_email"))


REFUSED = "421 4.3.2 Service not available, try again later"
REFUSED_ERROR = f"SMTPSenderRefused: {REFUSED}"


# --- retries, delivery log, dead letters ----------------------------------------------------------


def test_the_actor_takes_its_retry_policy_from_the_email_settings():
    settings = get_settings()
    assert settings.email_max_retries == 3
    assert {k: workers.notification.send_email.options[k] for k in ("max_retries", "min_backoff", "max_backoff")} == {
        "max_retries": settings.email_max_retries, "min_backoff": settings.email_min_backoff_ms,
        "max_backoff": settings.email_max_backoff_ms,
    }


async def test_a_relay_refusing_the_first_two_attempts_delivers_on_the_third_and_logs_each(relay, fast_retries):
    # given: a receipt queued, and a relay that answers 421 to the first two attempts
    relay.refuse_first = 2
    email_id = await queue_receipt()
    # when: the real actor runs with its real retries
    await deliver()
    # then: it arrived once, on the third attempt
    [mail] = relay.received
    email = await email_row(email_id)
    assert (email.status, email.attempts, email.sent_at is not None) == ("sent", 3, True)
    assert email.message_id == mail["Message-ID"]
    assert (mail["To"], mail["Subject"]) == ("ada@example.cm", "Odim: payment received for ODM-TEST-0001")
    # and the delivery log shows failed, failed, sent with the Message-ID and the relay's replies
    assert await log_of(email_id) == [
        (1, "failed", None, REFUSED, REFUSED_ERROR),
        (2, "failed", None, REFUSED, REFUSED_ERROR),
        (3, "sent", mail["Message-ID"], "250 2.0.0 Ok: queued", None),
    ]
    assert relay.mail_commands == 3
    # and it is multipart/alternative: the text, then the HTML
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n") == email.body_text
    assert mail.get_body(("html",)).get_content().replace("\r\n", "\n") == email.body_html
    # and a receipt is transactional: no unsubscribe link or header
    assert (mail["List-Unsubscribe"], mail["List-Unsubscribe-Post"]) == (None, None)
    assert "unsubscribe" not in email.body_text.lower() and "unsubscribe" not in email.body_html.lower()
    assert await all_rows(DeadLetter) == []


EMAILS = """
query($status: EmailStatus) {
  emails(status: $status, first: 10) {
    edges { node { id kind to status attempts messageId lastError
                   deliveries { attempt outcome smtpMessageId smtpResponse error } } }
    pageInfo { hasNextPage }
  }
}
"""


async def test_a_relay_down_for_good_dead_letters_the_email_after_four_attempts_and_a_replay_sends_it(
    api_client, fast_retries
):
    # given: a receipt queued, and nothing listening on the SMTP port
    email_id = await queue_receipt()
    with smtp_port(free_port()):
        # when: the worker tries 1 + 3 times
        await deliver()
    # then: the email is dead, with 4 delivery rows, the last one dead_lettered
    email = await email_row(email_id)
    assert (email.status, email.attempts, email.sent_at, email.message_id) == ("dead", 4, None, None)
    log = await log_of(email_id)
    assert [(a, o, m, r) for a, o, m, r, _ in log] == [
        (1, "failed", None, None), (2, "failed", None, None), (3, "failed", None, None),
        (4, "dead_lettered", None, None),
    ]
    assert all(e.startswith("SMTPConnectError: Error connecting to 127.0.0.1 on port") for *_, e in log)
    # and one dead letter in PostgreSQL holds the job
    [letter] = await all_rows(DeadLetter)
    assert (letter.actor, letter.queue, letter.args, letter.source_type, letter.source_id, letter.attempts,
            letter.status) == ("send_email", "notifications", {"email_id": email_id}, "email", email_id, 4, "open")
    assert letter.last_error == f"EmailNotDelivered: {email.last_error}"
    # and admins see it in emails(status: DEAD) with its attempts, and in deadLetters
    await make_user("ops@example.com", role="admin")
    admin = await login(api_client, "ops@example.com")
    dead = await gql(api_client, EMAILS, {"status": "DEAD"}, token=admin)
    assert dead == {"data": {"emails": {"edges": [{"node": {
        "id": encode_id("Email", email_id), "kind": "payment_confirmed", "to": "ada@example.cm", "status": "DEAD",
        "attempts": 4, "messageId": None, "lastError": email.last_error,
        "deliveries": [{"attempt": a, "outcome": o.upper(), "smtpMessageId": None, "smtpResponse": None, "error": e}
                       for a, o, _, _, e in log],
    }}], "pageInfo": {"hasNextPage": False}}}}
    letters = await gql(api_client, "{ deadLetters { edges { node { actor sourceType sourceId attempts } } } }",
                        token=admin)
    assert letters["data"]["deadLetters"]["edges"] == [
        {"node": {"actor": "send_email", "sourceType": "email", "sourceId": email_id, "attempts": 4}}]
    assert (await gql(api_client, EMAILS, {"status": "SENT"}, token=admin))["data"]["emails"]["edges"] == []

    # when: the relay is back and an admin replays the dead letter
    with running_relay() as back:
        async with session_scope() as s:
            await dead_letter.replay(s, letter.id, admin_user_id=(await login_id("ops@example.com")))
        await deliver()
    # then: sent once, on the fifth attempt
    [mail] = back.received
    email = await email_row(email_id)
    assert (email.status, email.attempts, email.message_id) == ("sent", 5, mail["Message-ID"])
    assert (await log_of(email_id))[-1] == (5, "sent", mail["Message-ID"], "250 2.0.0 Ok: queued", None)


async def login_id(address: str) -> int:
    from models import User

    async with session_scope() as s:
        return await s.scalar(select(User.id).where(User.email == address))


async def test_the_email_log_is_for_admins_only(api_client):
    # given
    await queue_receipt()
    await make_user("ada@example.com")
    customer = await login(api_client, "ada@example.com")
    # when
    anonymous = await gql(api_client, EMAILS, {})
    as_customer = await gql(api_client, EMAILS, {}, token=customer)
    # then
    assert (anonymous["data"], error_codes(anonymous)) == (None, ["UNAUTHENTICATED"])
    assert (as_customer["data"], error_codes(as_customer)) == (None, ["FORBIDDEN"])


async def test_the_stalled_work_condition_matches_only_emails_whose_job_may_be_lost():
    # given: emails in every status, all created and touched an hour ago
    ids = {}
    for i, status in enumerate(("queued", "failed", "sent", "dead", "suppressed")):
        ids[status] = await queue_receipt(key=f"receipt:{i}")
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    async with session_scope() as s:
        for status, email_id in ids.items():
            await s.execute(update(Email).where(Email.id == email_id)
                            .values(status=status, created_at=hour_ago, updated_at=hour_ago))
        recent = await queue_receipt(key="receipt:recent")
    # when
    cutoff = datetime.now(UTC) - timedelta(seconds=120)
    async with session_scope() as s:
        matched = set((await s.scalars(select(Email.id).where(notification.stalled(cutoff)))).all())
    # then: the old queued one and the failed one untouched for longer than the longest backoff (30 min)
    assert matched == {ids["queued"], ids["failed"]}
    assert recent not in matched


# --- preferences and opt-out ----------------------------------------------------------------------

PREFERENCES = """
{ myNotificationPreferences { emailOptOut kinds { kind description transactional email } } }
"""
SET_PREFERENCE = """
mutation($input: SetNotificationPreferenceInput!) {
  setNotificationPreference(input: $input) {
    preferences { emailOptOut kinds { kind email } }
    errors { field code message }
  }
}
"""
SET_OPT_OUT = """
mutation($input: SetEmailOptOutInput!) {
  setEmailOptOut(input: $input) { preferences { emailOptOut } errors { field code message } }
}
"""


async def test_preferences_list_every_kind_and_a_transactional_kind_cannot_be_turned_off(api_client):
    # given
    user = await make_user("ada@example.com")
    token = await login(api_client, "ada@example.com")
    # when
    before = await gql(api_client, PREFERENCES, token=token)
    off = await gql(api_client, SET_PREFERENCE, {"input": {"kind": "STATUS_CHANGED", "email": False}}, token=token)
    refused = await gql(api_client, SET_PREFERENCE, {"input": {"kind": "REFUND", "email": False}}, token=token)
    # then: every user-facing kind, on by default
    assert before == {"data": {"myNotificationPreferences": {"emailOptOut": False, "kinds": [
        {"kind": "PAYMENT_CONFIRMED", "description": "Receipt when your payment is confirmed", "transactional": True,
         "email": True},
        {"kind": "PAYMENT_FAILED", "description": "When a payment of yours did not go through", "transactional": True,
         "email": True},
        {"kind": "REFUND", "description": "When money is refunded to you", "transactional": True, "email": True},
        {"kind": "PAYOUT", "description": "Providers: when a payout to you is sent or fails", "transactional": True,
         "email": True},
        {"kind": "DISPUTE", "description": "Updates on a dispute about one of your orders", "transactional": True,
         "email": True},
        {"kind": "STATUS_CHANGED", "description": "When your request's status changes", "transactional": False,
         "email": True},
        {"kind": "PROVIDER_ASSIGNED", "description": "When a provider is assigned to your request",
         "transactional": False, "email": True},
        {"kind": "REQUEST_ASSIGNED", "description": "Providers: when a request is assigned to you",
         "transactional": False, "email": True},
        {"kind": "BOOKING_UPDATE", "description": "When a booking of yours changes status", "transactional": False,
         "email": True},
        {"kind": "SUBSTITUTION_OFFER", "description": "Providers: visits nearby you could take over",
         "transactional": False, "email": True},
        {"kind": "ACCOUNT", "description": "Account security: email verification, password resets, sign-in links "
         "for guests", "transactional": True, "email": True},
        {"kind": "PROVIDER_APPLICATION", "description": "Decisions on your application to become a provider",
         "transactional": True, "email": True},
        {"kind": "PROVIDER_STANDING", "description": "Providers: strikes, suspension and reinstatement of your account",
         "transactional": True, "email": True},
        {"kind": "CONTRACT", "description": "A contract for your order or visit to read and accept before work starts",
         "transactional": True, "email": True},
    ]}}}
    # and a non-transactional kind is turned off
    changed = off["data"]["setNotificationPreference"]
    assert changed["errors"] == []
    assert {k["kind"]: k["email"] for k in changed["preferences"]["kinds"]}["STATUS_CHANGED"] is False
    # and a transactional one cannot be, with a typed error and nothing written
    assert refused == {"data": {"setNotificationPreference": {"preferences": None, "errors": [{
        "field": "kind", "code": "TRANSACTIONAL_KIND",
        "message": "When money is refunded to you: transactional email (receipts, refunds, payouts, disputes) "
                   "cannot be turned off",
    }]}}}
    assert [(p.user_id, p.kind, p.email) for p in await all_rows(NotificationPreference)] == [
        (user.id, "status_changed", False)]


async def test_preferences_and_opt_out_need_a_login(api_client):
    # when
    read = await gql(api_client, PREFERENCES)
    write = await gql(api_client, SET_OPT_OUT, {"input": {"optOut": True}})
    # then
    assert (read["data"], error_codes(read)) == (None, ["UNAUTHENTICATED"])
    assert (write["data"], error_codes(write)) == (None, ["UNAUTHENTICATED"])
    assert await all_rows(EmailSuppression) == []


async def test_a_kind_turned_off_is_stored_as_suppressed_and_never_sent_while_receipts_still_go(
    api_client, relay, fast_retries
):
    # given: Ada turned status emails off
    user = await make_user("ada@example.com")
    token = await login(api_client, "ada@example.com")
    await gql(api_client, SET_PREFERENCE, {"input": {"kind": "STATUS_CHANGED", "email": False}}, token=token)
    # when: a status email and a receipt are queued for her (address in another case) and the worker runs
    status_id = await queue("status_changed", "Ada@Example.com", "status_changed", status_context(), "status:1")
    receipt_id = await queue_receipt(to="ada@example.com")
    await deliver()
    # then: the status email is stored as suppressed with its log row, never handed to SMTP
    suppressed = await email_row(status_id)
    assert (suppressed.status, suppressed.attempts, suppressed.user_id, suppressed.sent_at) == (
        "suppressed", 0, user.id, None)
    assert await log_of(status_id) == [(0, "suppressed", None, None, "the recipient turned status_changed email off")]
    assert await send_jobs() == 1
    # and only the receipt arrived
    assert [m["Subject"] for m in relay.received] == ["Odim: payment received for ODM-TEST-0001"]
    assert (await email_row(receipt_id)).status == "sent"


async def test_opting_out_of_everything_suppresses_non_transactional_mail_until_opted_back_in(api_client):
    # given
    await make_user("ada@example.com")
    token = await login(api_client, "ada@example.com")
    # when: she opts out
    opted = await gql(api_client, SET_OPT_OUT, {"input": {"optOut": True}}, token=token)
    during = await queue("status_changed", "ada@example.com", "status_changed", status_context(), "status:1")
    receipt = await queue_receipt(to="ada@example.com")
    # then
    assert opted == {"data": {"setEmailOptOut": {"preferences": {"emailOptOut": True}, "errors": []}}}
    assert [(s.address, s.source) for s in await all_rows(EmailSuppression)] == [("ada@example.com", "account")]
    assert (await email_row(during)).status == "suppressed"
    assert await log_of(during) == [(0, "suppressed", None, None, "the address opted out of non-transactional email")]
    assert (await email_row(receipt)).status == "queued"
    # when: she opts back in
    back = await gql(api_client, SET_OPT_OUT, {"input": {"optOut": False}}, token=token)
    after = await queue("status_changed", "ada@example.com", "status_changed", status_context(), "status:2")
    # then
    assert back == {"data": {"setEmailOptOut": {"preferences": {"emailOptOut": False}, "errors": []}}}
    assert await all_rows(EmailSuppression) == []
    assert (await email_row(after)).status == "queued"


async def test_an_opt_out_after_queueing_suppresses_the_mail_at_send_time(relay, fast_retries):
    # given: a status email queued for a guest, who then unsubscribes before the worker runs
    email_id = await queue("status_changed", "guest@example.cm", "status_changed", status_context(), "status:1")
    async with session_scope() as s:
        await notification.unsubscribe(s, notification.unsubscribe_token("guest@example.cm"))
    # when
    await deliver()
    # then
    assert relay.received == []
    assert ((await email_row(email_id)).status, await log_of(email_id)) == (
        "suppressed", [(0, "suppressed", None, None, "the address opted out of non-transactional email")])


# --- one-click unsubscribe (RFC 8058) -------------------------------------------------------------


async def test_a_guest_unsubscribes_with_one_click_from_the_list_unsubscribe_header(api_client, relay, fast_retries):
    # given: a guest received a status email
    await queue("status_changed", "guest@example.cm", "status_changed", status_context(), "status:1")
    await deliver()
    [mail] = relay.received
    url = mail["List-Unsubscribe"].strip("<>")
    # then: the headers of RFC 8058 and the same link in both bodies
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert url.startswith(f"{get_settings().public_base_url}/email/unsubscribe?token=")
    assert url in mail.get_body(("plain",)).get_content()
    assert url.replace("&", "&amp;") in mail.get_body(("html",)).get_content()
    path = urlsplit(url)
    # when: the mail client POSTs the one-click body (a GET first, as a link scanner would)
    page = await api_client.get(f"{path.path}?{path.query}")
    assert page.status_code == 200 and "<form method=post>" in page.text
    assert await all_rows(EmailSuppression) == []  # a GET changes nothing
    response = await api_client.post(f"{path.path}?{path.query}", content="List-Unsubscribe=One-Click",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    again = await api_client.post(f"{path.path}?{path.query}", content="List-Unsubscribe=One-Click",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    # then: the address is suppressed (once), status mail is suppressed, a refund still goes out
    assert (response.status_code, again.status_code) == (200, 200)
    assert "You are unsubscribed" in response.text
    assert [(s.address, s.source) for s in await all_rows(EmailSuppression)] == [("guest@example.cm", "one_click")]
    later = await queue("status_changed", "guest@example.cm", "status_changed", status_context(), "status:2")
    refund = await queue("refund", "guest@example.cm", "refund_issued",
                         {"name": "Guest", "reference": "ODM-TEST-0001", "amount": "4,000 FCFA", "reason": ""},
                         "refund:1")
    assert ((await email_row(later)).status, (await email_row(refund)).status) == ("suppressed", "queued")


async def test_a_forged_or_malformed_unsubscribe_token_changes_nothing(api_client):
    # given: a valid token for someone else, an address swapped under a valid signature, garbage
    valid = notification.unsubscribe_token("ada@example.cm")
    encoded_other = notification.unsubscribe_token("bob@example.cm").split(".")[0]
    forged = f"{encoded_other}.{valid.split('.')[1]}"
    tampered_sig = valid[:-2] + ("AA" if not valid.endswith("AA") else "BB")
    # when
    statuses = []
    for token in (forged, tampered_sig, "not-a-token", "", "a.b.c"):
        post = await api_client.post("/email/unsubscribe", params={"token": token}, content="List-Unsubscribe=One-Click",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        get = await api_client.get("/email/unsubscribe", params={"token": token})
        statuses.append((post.status_code, get.status_code))
    missing = await api_client.post("/email/unsubscribe", content="List-Unsubscribe=One-Click")
    # then
    assert statuses == [(400, 400)] * 5
    assert missing.status_code == 400
    assert await all_rows(EmailSuppression) == []
    assert notification.address_of_unsubscribe_token(valid) == "ada@example.cm"
    assert parse_qs(urlsplit(notification.unsubscribe_url("Ada@Example.cm")).query)["token"] == [valid]


# --- templates --------------------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script> & <b>bold</b>'
HOSTILE_ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"


@pytest.mark.parametrize("template", notification.TEMPLATE_NAMES)
def test_every_template_has_text_and_html_and_the_html_escapes_every_value(template):
    # given: every variable the template uses set to hostile text
    env = jinja2.Environment()
    names = set()
    for part in ("subject", "txt", "html"):
        names |= jinja2.meta.find_undeclared_variables(env.parse(notification.TEMPLATES[f"{template}.{part}"]))
    context = {name: HOSTILE for name in names - {"email_subject", "unsubscribe_url"}}
    if "items" in context:  # guest_links: a list of links
        context["items"] = [{"reference": HOSTILE, "service": HOSTILE, "url": HOSTILE}]
    # when
    rendered = notification.render(template, context)
    # then: the HTML carries the text escaped and never as markup; the text part carries it as is
    assert rendered.html.startswith("<!doctype html>")
    assert "<script>" not in rendered.html and "<b>bold" not in rendered.html
    assert HOSTILE_ESCAPED in rendered.html
    assert HOSTILE in rendered.text
    assert "\n" not in rendered.subject


async def test_a_customer_note_is_escaped_in_the_html_mail_and_kept_in_the_text(relay, fast_retries):
    # given: a status email whose note an admin typed with markup in it
    email_id = await queue("status_changed", "ada@example.cm", "status_changed", status_context(note=HOSTILE),
                           "status:1")
    # when
    await deliver()
    # then
    [mail] = relay.received
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    assert f"Note from our team: {HOSTILE_ESCAPED}" in html
    assert "<script>" not in html
    assert f"Note from our team: {HOSTILE}" in text
    assert (await email_row(email_id)).body_html.count(HOSTILE_ESCAPED) == 1


async def test_an_unregistered_kind_is_a_programming_error_and_writes_nothing():
    with pytest.raises(ValueError, match="'newsletter' is not registered"):
        await queue("newsletter", "ada@example.cm", "payment_confirmed", RECEIPT, "x:1")
    assert await all_rows(Email) == []


# --- provider assignment ----------------------------------------------------------------------------


async def test_assigning_a_provider_emails_the_customer_and_the_provider_once():
    # given: Ada's paid request and a provider with an account
    service, tiers = await make_service(name="Leak repair", prices={"XAF": 10_000})
    pro = await make_user("pro@example.com", role="provider", full_name="Eko Owner")
    provider = await make_provider(user_id=pro.id, display_name="Eko Plumbing")
    admin = await make_user("ops@example.com", role="admin")
    async with session_scope() as s:
        bought = await purchase_service(
            s, service_id=service.id, tier_id=tiers[0].id, user=None,
            customer=CustomerDetails(full_name="Ada Nkem", email="ada@example.cm", phone="+237671234567",
                                     requirements="Kitchen sink <leaks> & drips"),
        )
    async with session_scope() as s:
        await s.execute(update(ServiceRequest).where(ServiceRequest.id == bought.service_request.id)
                        .values(status="pending_contact"))
    # when: an admin assigns the provider, then assigns the same provider again
    for _ in range(2):
        async with session_scope() as s:
            await sr.assign_provider(s, bought.service_request.id, provider.id, actor=admin)
    # then
    reference = bought.service_request.reference
    async with session_scope() as s:
        rows = (await s.scalars(select(Email).where(Email.kind.in_(("provider_assigned", "request_assigned")))
                                .order_by(Email.id))).all()
    assert [(e.kind, e.to_address, e.user_id, e.subject, e.status) for e in rows] == [
        ("provider_assigned", "ada@example.cm", None,
         f"Odim: Eko Plumbing will take care of your request {reference}", "queued"),
        ("request_assigned", "pro@example.com", pro.id, f"Odim: you were assigned request {reference}", "queued"),
    ]
    assert "What the customer wrote: Kitchen sink <leaks> & drips" in rows[1].body_text
    assert "Kitchen sink &lt;leaks&gt; &amp; drips" in rows[1].body_html
    assert all(e.list_unsubscribe for e in rows)  # non-transactional: they carry the one-click link
