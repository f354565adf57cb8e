"""The authorisation matrix: every root field of the schema, run as each of seven roles,
against the table in tests/system/authz_matrix.py; plus object-level attacks on customer A's objects (by
global id through ``node``, by reference with and without guessing, with another guest's token,
through the list connections).

The world (tests/system/authz_matrix.py's docstring says who is who) is built once per test, since
tests/conftest.py empties every table before each test; the matrix test then runs all its cases
in one go and reports every mismatch at once.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyotp
import pytest
from graphql import ExecutionResult
from sqlalchemy import delete, func, select

import schema as schema_module
from domain.bookings import ticket as ticket_domain
from domain.identity import user as user_domain
from domain.messaging import feed as feed_domain
from domain.messaging.chat import send_message
from domain.money import payout as payout_domain
from domain.orders import dispute as dispute_domain
from domain.orders import escalation, guest_access
from domain.orders import service_request as sr
from domain.providers.provider import GeoPoint
from domain.shared import dead_letter, live, outbox
from models import Booking, Conversation, Email, Notification, ServiceRequest, SubstitutionOffer, Ticket, User
from models.db import session_scope
from resolvers.context import Context
from resolvers.ids import encode_id
from settings import get_settings
from tests.support.bookings import Bookable, Cast, bookable_provider, checkout_and_pay, drive, hold, slot
from tests.support.chat import make_shop
from tests.support.factories import make_affiliate, make_user
from tests.support.graphql_client import gql, login
from tests.support.orders import GUEST, Shop, domain_purchase, pay
from tests.system.authz_matrix import ALLOWED, DENIAL_CODES, DENIED, HIDDEN, ROLES, TABLE, Row

ROOTS = {"query": "query_type", "mutation": "mutation_type", "subscription": "subscription_type"}
SUBSCRIPTION_FIRST_EVENT_SECONDS = 20  # a safety net only: with after: "0" the first event is already stored


@dataclass
class World:
    """Everybody and everything the matrix's rows refer to (see tests/system/authz_matrix.py)."""

    a: User
    b: User
    admin: User
    p1: Bookable
    p2: Bookable
    shop: Shop
    request_a: ServiceRequest
    request_b: ServiceRequest
    guest_request: ServiceRequest
    guest_token: str
    conversation_a_id: int
    message_a_gid: str
    booking_a_id: int
    ticket_a_id: int
    notification_a_id: int
    affiliate_code: str
    tokens: dict[str, str | None] = field(default_factory=dict)
    accounts: dict[str, User] = field(default_factory=dict)
    case: dict[str, Any] = field(default_factory=dict)
    _slots: int = 0

    # --- ids ---
    @staticmethod
    def gid(type_name: str, ident: int) -> str:
        return encode_id(type_name, ident)

    @property
    def request_a_gid(self) -> str:
        return encode_id("ServiceRequest", self.request_a.id)

    @property
    def booking_a_gid(self) -> str:
        return encode_id("Booking", self.booking_a_id)

    @property
    def ticket_a_gid(self) -> str:
        return encode_id("Ticket", self.ticket_a_id)

    @property
    def conversation_a_gid(self) -> str:
        return encode_id("Conversation", self.conversation_a_id)

    @property
    def notification_a_gid(self) -> str:
        return encode_id("Notification", self.notification_a_id)

    @property
    def p1_gid(self) -> str:
        return encode_id("Provider", self.p1.provider.id)

    @property
    def p2_gid(self) -> str:
        return encode_id("Provider", self.p2.provider.id)

    @property
    def bk_service_gid(self) -> str:
        return encode_id("Service", self.p1.service.id)

    @property
    def shop_service_gid(self) -> str:
        return encode_id("Service", self.shop.service_id)

    @property
    def shop_tier_gid(self) -> str:
        return encode_id("ServiceTier", self.shop.tier_ids[0])

    @property
    def secrets(self) -> list[str]:
        """Strings only someone allowed to see customer A's things may receive."""
        return [self.a.email, self.a.phone, self.a.full_name, self.request_a_gid, self.booking_a_gid,
                self.ticket_a_gid, self.conversation_a_gid, self.message_a_gid, self.notification_a_gid]

    # --- fresh objects for destructive mutations ---
    def free_slot(self) -> str:
        """A slot start of P1 nobody holds yet (ISO 8601, UTC)."""
        self._slots += 1
        return slot(self._slots // 8 + 1, 7 + self._slots % 8).isoformat()

    def _slot_datetime(self) -> datetime:
        return datetime.fromisoformat(self.free_slot())

    async def fresh_request(self, *, assigned: bool) -> ServiceRequest:
        """A new paid request of A's (assigned to P1 when ``assigned``)."""
        request = await domain_purchase(self.shop, self.a)
        await pay(request.id)
        if assigned:
            async with session_scope() as s:
                await sr.assign_provider(s, request.id, self.p1.provider.id, actor=self.admin)
        return request

    async def fresh_dispute(self) -> int:
        request = await self.fresh_request(assigned=True)
        async with session_scope() as s:
            return (await dispute_domain.open_dispute(s, request.id, actor=self.a, reason="Still drips")).id

    async def fresh_dead_letter(self) -> int:
        return await dead_letter.record_failure(
            actor="send_email", queue="notifications", args={"email_id": 987654}, error=RuntimeError("boom"),
            traceback_text="Traceback", attempts=5, final=True)

    async def fresh_customer(self) -> int:
        """A customer account with nothing else (to be erased)."""
        self._slots += 1
        return (await make_user(f"zed{self._slots}@example.com", full_name="Zed Erasable")).id

    async def fresh_ticket(self) -> int:
        async with session_scope() as s:
            t = await ticket_domain.create_ticket(
                s, self.a, category="plumbing", service_id=None, appliance="Kitchen sink", brand=None, model=None,
                description="Drips", preferred_windows=[], urgent=False, point=GeoPoint(4.0511, 9.7679), address="")
            return t.id

    async def fresh_escalation(self) -> int:
        ticket_id = await self.fresh_ticket()
        async with session_scope() as s:
            t = await s.get(Ticket, ticket_id)
            return (await escalation.escalate(s, "ticket_unassigned", ticket=t, note="authz")).id

    async def fresh_destination(self) -> int:
        async with session_scope() as s:
            d = await payout_domain.register_destination(
                s, self.p1.provider.id, kind="mobile_money", currency="XAF", country_code="CM",
                holder_name="Paul Pro", phone="+237671234570", operator="orange", make_default=False)
            return d.id

    @staticmethod
    async def withdraw_offers(booking_id: int) -> None:
        """Delete every substitution offer of a booking."""
        async with session_scope() as s:
            await s.execute(delete(SubstitutionOffer).where(SubstitutionOffer.booking_id == booking_id))

    async def fresh_booking(self, status: str) -> int:
        """A new booking of A's with P1, driven to ``status`` (booking_fixtures.ROUTES)."""
        start = self._slot_datetime()
        visit = await hold(self.p1, self.a, start)
        cast = Cast(self.p1, self.p2, self.a, self.b, self.admin)
        await drive(cast, visit.id, status)
        return visit.id


async def build_world(api_client) -> World:
    """Customer A (Ada) with a paid request assigned to P1, its conversation with one message, a
    PAID booking with P1 on her ticket and a notification; customer B (Eve) with her own paid
    request; P2, verified and bookable for the same service; an admin; a guest purchase and its
    signed token; an affiliate code with no account. Then every role's token."""
    shop = await make_shop()
    a = await make_user("ada@example.com", full_name="Ada Eko", phone="+237671111111")
    b = await make_user("eve@example.com", full_name="Eve Other", phone="+237672222222")
    admin = await make_user("ops@example.com", role="admin", full_name="Odim Ops")
    p1 = await bookable_provider("Paul Pro", email="pro@example.com")
    p2 = await bookable_provider("Olga Other", email="other@example.com", service=(p1.service, [p1.tier]))
    request_a = await domain_purchase(shop, a)
    await pay(request_a.id)
    request_b = await domain_purchase(shop, b)
    await pay(request_b.id)
    guest_request = await domain_purchase(shop, None)
    async with session_scope() as s:
        await sr.assign_provider(s, request_a.id, p1.provider.id, actor=admin)
        conversation_id = await s.scalar(select(Conversation.id).where(Conversation.service_request_id == request_a.id))
    async with session_scope() as s:
        message = await send_message(s, a, conversation_id, "When can you come?")
    world = World(a=a, b=b, admin=admin, p1=p1, p2=p2, shop=shop, request_a=request_a, request_b=request_b,
                  guest_request=guest_request, guest_token=guest_access.guest_access_token(guest_request.reference),
                  conversation_a_id=conversation_id, message_a_gid=encode_id("ChatMessage", message.id),
                  booking_a_id=0, ticket_a_id=0, notification_a_id=0,
                  affiliate_code=(await make_affiliate("AUTHZ-PARTNER")).code)
    world.ticket_a_id = await world.fresh_ticket()
    visit = await hold(p1, a, world._slot_datetime(), ticket_id=world.ticket_a_id)
    await checkout_and_pay(visit.id, a)
    world.booking_a_id = visit.id
    async with session_scope() as s:  # everybody has a notification (notificationAdded replays it)
        for user in (a, b, admin, p1.provider_user, p2.provider_user):
            await feed_domain.notify(s, user.id, kind="dispute", title=f"For {user.full_name}", body="Hello")
    async with session_scope() as s:
        world.notification_a_id = await s.scalar(
            select(Notification.id).where(Notification.user_id == a.id).order_by(Notification.id.desc()).limit(1))
    await outbox.relay()
    accounts = {"customer_a": a, "customer_b": b, "provider_assigned": p1.provider_user,
                "provider_other": p2.provider_user, "admin": admin}
    world.accounts = accounts
    world.tokens = {"anonymous": None, "guest": None}
    for role in accounts:
        world.tokens[role] = await fresh_token(api_client, world, role)
    return world


async def fresh_token(api_client, w: World, role: str) -> str | None:
    """A new sign-in's access token for ``role`` (None for anonymous and guest). The admin signs in
    with two-factor authentication (enrolled on first use) where the code base has it."""
    user = w.accounts.get(role)
    if user is None:
        return None
    if role != "admin" or not hasattr(user_domain, "confirm_mfa_enrolment"):
        return await login(api_client, user.email)
    async with session_scope() as s:
        admin = await s.get(User, user.id)
        if admin.mfa_enabled_at is None:
            enrolment = await user_domain.start_mfa_enrolment(s, admin)
            return (await user_domain.confirm_mfa_enrolment(s, admin, pyotp.TOTP(enrolment.secret).now())).access_token
        return (await user_domain.open_session(s, admin, mfa=True)).access_token


@pytest.fixture(autouse=True)
def no_rate_limits(monkeypatch) -> None:
    """The matrix sends hundreds of requests from one address and logs in many times: lift every limit
    (tests/system/test_abuse_limits.py proves them)."""
    settings = get_settings()
    for name in dir(settings):
        if (name.startswith("rate_limit_") and isinstance(getattr(settings, name), str)) or name == "chat_rate_limit":
            monkeypatch.setattr(settings, name, "1000000/minute")


# --- running one cell ------------------------------------------------------------------------------

def root_fields() -> dict[str, dict[str, Any]]:
    """kind -> {field name: graphql-core field} of the exported schema's root types."""
    gql_schema = schema_module.schema._schema
    out = {}
    for kind, attr in ROOTS.items():
        root = getattr(gql_schema, attr)
        out[kind] = dict(root.fields) if root is not None else {}
    return out


def mutation_document(name: str, gql_field: Any) -> str:
    """``mutation($input: <Type>) { name(input: $input) { errors { code } } }`` (no ``input`` for a
    mutation without arguments)."""
    if "input" not in gql_field.args:
        return f"mutation {{ {name} {{ errors {{ code }} }} }}"
    return f"mutation($input: {gql_field.args['input'].type}) {{ {name}(input: $input) {{ errors {{ code }} }} }}"


def classify(body: dict, name: str, row: Row, secrets: list[str]) -> str:
    """denied / hidden / allowed, or ``error:<code>`` for any other top-level error (see authz_matrix)."""
    errors = body.get("errors") or []
    codes = [(e.get("extensions") or {}).get("code") for e in errors]
    if any(c in ("FORBIDDEN", "UNAUTHENTICATED") for c in codes):
        return DENIED
    if errors:
        return f"error:{codes[0]}:{errors[0].get('message')}"
    data = (body.get("data") or {}).get(name)
    if row.kind == "mutation" and isinstance(data, dict):
        payload_codes = {e["code"] for e in data.get("errors") or []}
        if payload_codes & DENIAL_CODES:
            return DENIED
    if row.personal:
        text = json.dumps(data)
        return ALLOWED if any(secret and secret in text for secret in secrets) else HIDDEN
    return ALLOWED


async def run_subscription(document: str, variables: dict, token: str | None) -> dict:
    """The first result of a subscription opened in-process the way a WebSocket would (token from
    connection_init), as a response dict."""
    ctx = Context()
    ctx.authenticate(token)
    result = await schema_module.schema.subscribe(document, variable_values=variables, context_value=ctx)
    if isinstance(result, ExecutionResult):
        first = result
    else:
        try:
            first = await asyncio.wait_for(anext(aiter(result)), SUBSCRIPTION_FIRST_EVENT_SECONDS)
        finally:
            await result.aclose()
    return {"data": first.data, "errors": [e.formatted for e in first.errors or []] or None}


async def run_cell(api_client, w: World, name: str, row: Row, document: str, role: str) -> tuple[str, dict]:
    token = await fresh_token(api_client, w, role) if row.own_session else w.tokens[role]
    variables = row.variables(w, role)
    if inspect.isawaitable(variables):
        variables = await variables
    if row.kind == "mutation":
        variables = {"input": variables} if variables is not None else {}
    if row.kind == "subscription":
        body = await run_subscription(document, variables, token)
    else:
        body = await gql(api_client, document, variables, token=token)
    return classify(body, name, row, w.secrets), body


# --- the tests -----------------------------------------------------------------------------------

def test_every_root_field_of_the_schema_has_a_row_and_every_row_a_field():
    # given the root fields of the schema and the table
    fields = root_fields()
    # then every field has a row of the right kind, with an expectation for every role, and no row is stale
    missing = sorted(f"{kind} {name}" for kind, names in fields.items() for name in names if name not in TABLE)
    stale = sorted(name for name in TABLE if not any(name in names for names in fields.values()))
    wrong_kind = sorted(name for name, row in TABLE.items()
                        if name not in fields[row.kind] and any(name in names for names in fields.values()))
    incomplete = sorted(name for name, row in TABLE.items() if set(row.expect) != set(ROLES))
    assert missing == [], f"root fields without a row in tests/system/authz_matrix.py: {missing}"
    assert stale == [], f"rows of tests/system/authz_matrix.py naming no root field: {stale}"
    assert wrong_kind == [], f"rows whose kind is not their field's root type: {wrong_kind}"
    assert incomplete == [], f"rows without an expectation for every role: {incomplete}"


async def test_every_root_field_as_every_role_gives_the_table_s_outcome(api_client, capsys):
    # given the world and the live bus (subscriptions)
    started = time.monotonic()
    w = await build_world(api_client)
    await live.bus.connect()
    fields = root_fields()
    mismatches: list[str] = []
    tally = {ALLOWED: 0, DENIED: 0, HIDDEN: 0}
    try:
        # when every row runs as every role (refused roles first, then the allowed ones)
        for name, row in TABLE.items():
            if name not in fields[row.kind]:
                continue
            document = row.document or mutation_document(name, fields[row.kind][name])
            w.case = {}
            if row.setup is not None:
                await row.setup(w)
            order = sorted(ROLES, key=lambda r: row.expect[r] == ALLOWED)
            for role in order:
                try:
                    got, body = await run_cell(api_client, w, name, row, document, role)
                except Exception as exc:
                    got, body = f"crash:{type(exc).__name__}: {exc}", {}
                if got in tally:
                    tally[got] += 1
                if got != row.expect[role]:
                    mismatches.append(f"{row.kind} {name} as {role}: expected {row.expect[role]}, got {got}; "
                                      f"{json.dumps(body)[:400]}")
    finally:
        await live.bus.disconnect()
    # then every cell matches the table
    cells = sum(1 for name, row in TABLE.items() if name in fields[row.kind]) * len(ROLES)
    with capsys.disabled():
        print(f"\nauthz matrix: {cells // len(ROLES)} fields x {len(ROLES)} roles = {cells} cells; "
              f"allowed {tally[ALLOWED]}, denied {tally[DENIED]}, hidden {tally[HIDDEN]}; "
              f"{time.monotonic() - started:.1f} s")
    assert mismatches == [], "\n".join(mismatches)


# --- object-level attacks on customer A's objects ---------------------------------------------------

NODE = "query($id: ID!) { node(id: $id) { id } }"
TRACK = """query($ref: String!, $token: String) { serviceRequest(reference: $ref, accessToken: $token) {
  reference customer { fullName email phone } conversation { id } disputes { id } } }"""
INTRUDERS = ("anonymous", "guest", "customer_b", "provider_other")


async def a_s_global_ids(w: World) -> dict[str, str]:
    """Type name -> global id of one of customer A's objects (or, for PayoutDestination, P1's), plus an email."""
    dispute_id = await w.fresh_dispute()
    destination_id = await w.fresh_destination()
    async with session_scope() as s:
        email_id = await s.scalar(select(Email.id).order_by(Email.id).limit(1))
    assert email_id is not None  # the payments of the world sent receipts
    return {
        "ServiceRequest": w.request_a_gid, "Booking": w.booking_a_gid, "Ticket": w.ticket_a_gid,
        "Conversation": w.conversation_a_gid, "ChatMessage": w.message_a_gid, "Notification": w.notification_a_gid,
        "User": encode_id("User", w.a.id), "Dispute": encode_id("Dispute", dispute_id),
        "PayoutDestination": encode_id("PayoutDestination", destination_id), "Email": encode_id("Email", email_id),
    }


async def test_nobody_else_reaches_customer_a_s_objects_by_global_id(api_client):
    # given the world and one global id of each kind of A's objects
    w = await build_world(api_client)
    ids = await a_s_global_ids(w)
    # when each intruder asks `node` for each of them
    seen = {}
    for role in INTRUDERS:
        for type_name, gid in ids.items():
            body = await gql(api_client, NODE, {"id": gid}, token=w.tokens[role])
            seen[(role, type_name)] = body
    # then every answer is null without an error (nothing tells whether the object exists)
    leaks = {k: v for k, v in seen.items() if v != {"data": {"node": None}}}
    assert leaks == {}
    # and the rightful callers do get them (the ids are right): A her own, admin everything but her
    # notification and the message (messages are read through their conversation)
    for type_name, gid in ids.items():
        mine = await gql(api_client, NODE, {"id": gid}, token=w.tokens["customer_a"])
        admin = await gql(api_client, NODE, {"id": gid}, token=w.tokens["admin"])
        a_sees = type_name not in ("ChatMessage", "PayoutDestination", "Email")
        admin_sees = type_name not in ("ChatMessage", "Notification")
        assert (mine["data"]["node"] == {"id": gid}) is a_sees, (type_name, mine)
        assert (admin["data"]["node"] == {"id": gid}) is admin_sees, (type_name, admin)


async def test_a_reference_alone_a_guessed_one_or_another_guest_s_token_shows_no_personal_data(api_client):
    # given A's request, the guest's own request and its signed token
    w = await build_world(api_client)
    ref = w.request_a.reference
    same = [ref, ref.lower(), f"  {ref} "]  # the same reference, as tracking normalises it
    wrong = [ref[:-1] + ("A" if ref[-1] != "A" else "B"), ref[:-2], "ODM-0000-0000"]
    exp, sig = w.guest_token.split(".", 1)
    forged = [w.guest_token, f"{int(exp) + 3600}.{sig}", guest_access.guest_access_token(ref, now=time.time() - 10**7),
              f"{exp}.{'A' * len(sig)}", "", "garbage"]
    # when B, P2 and anonymous callers track A's reference (exact or guessed), and guests try tokens on it
    tracked = {(role, r): await gql(api_client, TRACK, {"ref": r}, token=w.tokens[role])
               for role in ("customer_b", "provider_other", "anonymous") for r in same + wrong}
    tokened = {t: await gql(api_client, TRACK, {"ref": ref, "token": t}) for t in forged}
    own = await gql(api_client, TRACK, {"ref": w.guest_request.reference, "token": w.guest_token})
    # then the right reference shows the public view only (no customer, conversation or disputes)
    public = {"reference": ref, "customer": None, "conversation": None, "disputes": []}
    assert {k: v["data"]["serviceRequest"] for k, v in tracked.items() if k[1] in same} == \
        {k: public for k in tracked if k[1] in same}
    assert {t: v["data"]["serviceRequest"] for t, v in tokened.items()} == {t: public for t in forged}
    # and a guessed reference finds nothing
    assert {k: v for k, v in tracked.items() if k[1] in wrong} == {k: {"data": {"serviceRequest": None}}
                                                                 for k in tracked if k[1] in wrong}
    # and the guest's own token opens its own request (the control)
    customer = own["data"]["serviceRequest"]["customer"]
    assert (customer["fullName"], customer["email"]) == (GUEST["fullName"], GUEST["email"])


async def test_lists_and_filters_never_hand_customer_a_s_objects_to_others(api_client):
    # given the world
    w = await build_world(api_client)
    lists = [
        "{ serviceRequests(first: 100, filter: {assignedProviderId: " + json.dumps(w.p1_gid) + "}) "
        "{ totalCount edges { node { id } } } }",
        "{ serviceRequests(first: 100, filter: {status: TEAM_ASSIGNED}) { totalCount edges { node { id } } } }",
        "{ myBookings(first: 100, status: PAID) { edges { node { id order { customer { email } } } } } }",
        "{ myTickets(first: 100) { edges { node { id visits { id } } } } }",
        "{ myConversations(first: 100) { edges { node { id lastMessage { body } } } } }",
        "{ notifications(first: 100) { edges { node { id } } } }",
        "{ notificationsSince { id } }",
    ]
    # when B and P2 read every list, filtered towards A's objects
    got = {(role, doc): await gql(api_client, doc, token=w.tokens[role])
           for role in ("customer_b", "provider_other") for doc in lists}
    # then no answer errs and none holds anything of A's
    assert {k: v for k, v in got.items() if v.get("errors")} == {}
    assert {k: v for k, v in got.items() if any(secret in json.dumps(v) for secret in w.secrets)} == {}
    # and the filter by P1 finds nothing for B (her request is not assigned) and for P2 (not his)
    assert [got[(r, lists[0])]["data"]["serviceRequests"]["totalCount"] for r in ("customer_b", "provider_other")] == [0, 0]


async def test_marking_someone_else_s_notification_read_changes_nothing(api_client):
    # given A's unread notification
    w = await build_world(api_client)
    doc = ("mutation($input: MarkNotificationsReadInput!) { markNotificationsRead(input: $input) "
           "{ errors { code } } }")
    # when B, both providers and the admin mark it read by id and by `upTo`
    bodies = [await gql(api_client, doc, {"input": {"ids": [w.notification_a_gid], "upTo": w.notification_a_gid}},
                        token=w.tokens[role])
              for role in ("customer_b", "provider_assigned", "provider_other", "admin")]
    # then each call succeeds as a no-op and A's notification is still unread
    assert [b["data"]["markNotificationsRead"]["errors"] for b in bodies] == [[], [], [], []]
    async with session_scope() as s:
        assert (await s.get(Notification, w.notification_a_id)).read_at is None


async def test_an_admin_signed_in_without_two_factor_is_refused_every_admin_only_field(api_client):
    # given the world and an admin sign-in that presented no TOTP code
    w = await build_world(api_client)
    async with session_scope() as s:
        w.tokens["admin"] = (await user_domain.open_session(s, await s.get(User, w.admin.id), mfa=False)).access_token
    fields = root_fields()
    admin_only = [name for name, row in TABLE.items()
                  if name in fields[row.kind] and row.expect["admin"] == ALLOWED
                  and all(row.expect[r] != ALLOWED for r in ROLES if r != "admin")]
    await live.bus.connect()
    got = {}
    try:
        # when it calls each admin-only field
        for name in admin_only:
            row = TABLE[name]
            w.case = {}
            if row.setup is not None:
                await row.setup(w)
            document = row.document or mutation_document(name, fields[row.kind][name])
            got[name] = (await run_cell(api_client, w, name, row, document, "admin"))[0]
    finally:
        await live.bus.disconnect()
    # then every one is denied
    assert len(admin_only) >= 20
    assert {n: o for n, o in got.items() if o != DENIED} == {}


async def test_nobody_else_books_a_visit_on_customer_a_s_ticket_and_a_provider_never_books_itself(api_client):
    # given A's ticket and P1's free slots
    w = await build_world(api_client)
    doc = "mutation($input: HoldSlotInput!) { holdSlot(input: $input) { booking { id } errors { code } } }"
    async with session_scope() as s:
        before = await s.scalar(select(func.count()).select_from(Booking))
    # when B and P2 hold a slot of P1 for A's ticket, and P1 holds its own time
    on_ticket = [await gql(api_client, doc, {"input": {
        "providerId": w.p1_gid, "serviceId": w.bk_service_gid, "start": w.free_slot(), "ticketId": w.ticket_a_gid}},
        token=w.tokens[role]) for role in ("customer_b", "provider_other")]
    own = await gql(api_client, doc, {"input": {"providerId": w.p1_gid, "serviceId": w.bk_service_gid,
                                                "start": w.free_slot()}}, token=w.tokens["provider_assigned"])
    # then each is refused and no booking was written
    assert [classify(b, "holdSlot", TABLE["holdSlot"], w.secrets) for b in [*on_ticket, own]] == [DENIED] * 3
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(Booking)) == before
