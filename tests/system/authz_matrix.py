"""THE AUTHORISATION MATRIX: one row per root field of the schema (Query, Mutation, Subscription).

tests/system/test_authz_matrix.py enumerates every root field of ``schema.schema`` and runs each row's
operation as each of the seven ROLES, then compares the outcome with the row's ``expect``. A root
field without a row here fails the test, naming the field. To add a field, add ONE entry to
``TABLE`` (keep them grouped by root type; the key is the field's GraphQL name).

Roles (the fixture world is built once in tests/system/test_authz_matrix.py; ``w`` below is that world):
  anonymous          no token.
  guest              no token, but holding the signed ``guestAccessToken`` of ITS OWN guest purchase
                     (``w.guest_token`` for ``w.guest_request``); passed wherever a field takes one.
  customer_a         Ada (``w.a``): owns ``w.request_a`` (paid, assigned to P1, with a conversation
                     ``w.conversation_a`` holding one message), ``w.booking_a`` (PAID, with P1, on
                     ``w.ticket_a``), notification ``w.notification_a``.
  customer_b         Eve (``w.b``): another customer with her own paid request ``w.request_b``.
  provider_assigned  P1 (``w.p1``, account ``w.p1_user``): assigned to ``w.request_a``, provider of
                     ``w.booking_a``; bookable for ``w.bk_service``.
  provider_other     P2 (``w.p2``, account ``w.p2_user``): verified, bookable for the same service,
                     assigned to nothing of Ada's.
  admin              an operator (``w.admin``).

Every case targets customer A's objects, so customer_b and provider_other must be denied or see
nothing personal.

Outcomes (decided by ``classify`` in the test, in this order):
  "denied"   a top-level error with ``extensions.code`` FORBIDDEN or UNAUTHENTICATED, or a payload
             error (``errors { code }`` of a mutation payload) whose code is in DENIAL_CODES
             (NOT_FOUND: the object is hidden from the caller; NOT_A_PROVIDER: wrong kind of account).
  "hidden"   (only for rows with ``personal=True``) no denial, but the data holds none of customer
             A's secrets (``w.secrets``: her email, phone and name, the global ids of her request,
             booking, ticket, conversation, message and notification): null, an empty list, a
             connection without her objects, or an object without its personal fields.
  "allowed"  anything else: data came back (for ``personal`` rows: with some of A's secrets). A
             typed payload error other than a denial code (INVALID_TRANSITION, SLOT_UNAVAILABLE,
             BELOW_PAYOUT_MINIMUM ...) is "allowed": authorisation passed, the business rule said no.
  (NOT_A_CUSTOMER likewise.)
  Other top-level errors (BAD_USER_INPUT, a masked internal error) are reported as "error:<code>" and
  never match an expectation: fix the row's variables.

Row fields:
  kind       "query" | "mutation" | "subscription".
  expect     role -> outcome; build it with ``roles(default, **overrides)`` or the shorthands.
  document   the operation. Mutations may leave it out: the test builds
             ``mutation($input: <InputType>!) { field(input: $input) { errors { code } } }``.
  variables  ``(w, role) -> dict`` (may be async). For mutations: the value of ``input`` (``NO_INPUT`` for a
             mutation without arguments: the document then has none).
  setup      optional ``async (w) -> None`` run once before the row's calls, to make fresh objects
             the mutation consumes (store them on ``w.case``, a dict emptied before each row).
  personal   True when the row reads A's objects (enables the "hidden" outcome).
  own_session  True for calls that end the caller's sign-in (logout): each role then calls with a new
             sign-in of its own instead of the world's token.
Within a row, roles expected to be refused run first, then the allowed ones, so a destructive
mutation is tried by the intruders before its rightful caller changes the object; later allowed
roles may then get a typed error (still "allowed").

Subscriptions are run in-process with ``schema.subscribe`` and a WebSocket-like Context; ``after: "0"``
replays the stream's existing events, so the first event or the opening error decides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

ROLES = ("anonymous", "guest", "customer_a", "customer_b", "provider_assigned", "provider_other", "admin")
ALLOWED, DENIED, HIDDEN = "allowed", "denied", "hidden"
DENIAL_CODES = frozenset({"FORBIDDEN", "UNAUTHENTICATED", "NOT_FOUND", "NOT_A_PROVIDER", "NOT_A_CUSTOMER"})


def roles(default: str, **overrides: str) -> dict[str, str]:
    """An expectation for every role: ``default`` unless overridden by role name."""
    unknown = set(overrides) - set(ROLES)
    assert not unknown, unknown
    return {r: overrides.get(r, default) for r in ROLES}


PUBLIC = roles(ALLOWED)
ADMIN_ONLY = roles(DENIED, admin=ALLOWED)
REPORT_PERIOD = 'from: "2026-01-01T00:00:00Z", to: "2026-12-31T00:00:00Z"'
LOGGED_IN = roles(ALLOWED, anonymous=DENIED, guest=DENIED)
PROVIDERS = roles(DENIED, provider_assigned=ALLOWED, provider_other=ALLOWED)
# A's object: her, its provider and admins; everyone else refused.
PARTIES = roles(DENIED, customer_a=ALLOWED, provider_assigned=ALLOWED, admin=ALLOWED)
# A's object read through a nullable field or a list: others get nothing of hers.
PARTIES_HIDDEN = roles(HIDDEN, customer_a=ALLOWED, provider_assigned=ALLOWED, admin=ALLOWED)
# A list of the caller's own things (must not show A's to others); anonymous refused.
OWN_LIST = roles(HIDDEN, anonymous=DENIED, guest=DENIED, customer_a=ALLOWED, provider_assigned=ALLOWED, admin=ALLOWED)
CUSTOMER_OR_ADMIN = roles(DENIED, customer_a=ALLOWED, admin=ALLOWED)

Variables = Callable[[Any, str], "dict[str, Any] | Awaitable[dict[str, Any]]"]


@dataclass(frozen=True)
class Row:
    kind: str
    expect: dict[str, str]
    variables: Variables
    document: str | None = None
    setup: Callable[[Any], Awaitable[None]] | None = None
    personal: bool = False
    own_session: bool = False


def q(expect: dict[str, str], document: str, variables: Variables = lambda w, role: {}, *, personal: bool = False,
      setup: Callable[[Any], Awaitable[None]] | None = None) -> Row:
    return Row("query", expect, variables, document, setup, personal)


def m(expect: dict[str, str], variables: Variables, *, setup: Callable[[Any], Awaitable[None]] | None = None,
      document: str | None = None, own_session: bool = False) -> Row:
    return Row("mutation", expect, variables, document, setup, own_session=own_session)


NO_INPUT: Variables = lambda w, role: None  # noqa: E731 - a mutation without arguments


def s(expect: dict[str, str], document: str, variables: Variables) -> Row:
    return Row("subscription", expect, variables, document)


DOUALA = {"latitude": 4.0511, "longitude": 9.7679}
WINDOW = {"from": "2027-03-02T00:00:00+00:00", "to": "2027-03-03T00:00:00+00:00"}


def _guest_token(w: Any, role: str) -> str | None:
    """The only token a guest holds: the one of its own purchase (never A's)."""
    return w.guest_token if role == "guest" else None


# --- mutation setups (fresh objects a destructive mutation consumes) ------------------------------

async def _fresh_assigned_request(w: Any) -> None:
    w.case["request"] = await w.fresh_request(assigned=True)


async def _fresh_paid_request(w: Any) -> None:
    w.case["request"] = await w.fresh_request(assigned=False)


async def _fresh_dispute(w: Any) -> None:
    w.case["dispute"] = await w.fresh_dispute()


async def _fresh_dead_letter(w: Any) -> None:
    w.case["dead_letter"] = await w.fresh_dead_letter()


async def _fresh_escalation(w: Any) -> None:
    w.case["escalation"] = await w.fresh_escalation()


async def _fresh_destination(w: Any) -> None:
    w.case["destination"] = await w.fresh_destination()


async def _fresh_customer(w: Any) -> None:
    w.case["customer"] = await w.fresh_customer()


async def _fresh_ticket(w: Any) -> None:
    w.case["ticket"] = await w.fresh_ticket()


def _booking_in(status: str) -> Callable[[Any], Awaitable[None]]:
    async def setup(w: Any) -> None:
        w.case["booking"] = await w.fresh_booking(status)
    return setup


async def _ada_application(w: Any) -> None:
    """Ada's open (draft) provider application with one document row: made once, reused by
    the onboarding rows; ``w.case["application"]`` / ``w.case["document"]`` hold their ids."""
    import uuid

    from domain.providers import onboarding
    from models import ApplicationDocument
    from models.db import session_scope

    async with session_scope() as s:
        app = await onboarding.save_step(s, w.a.id, "categories", categories=["plumbing"])
        doc = ApplicationDocument(application_id=app.id, kind="id_card", original_filename="id.pdf",
                                  content_type="application/pdf", size_bytes=5, sha256="0" * 64,
                                  storage_key=f"applications/{app.id}/{uuid.uuid4().hex}")
        s.add(doc)
        await s.flush()
        w.case["application"], w.case["document"] = app.id, doc.id


async def _booking_without_offers(w: Any) -> None:
    """A's booking whose provider cannot make it, with no substitution offer to anyone: a provider
    without an offer must not take it (P2 would otherwise hold the automatic offer)."""
    w.case["booking"] = await w.fresh_booking("cannot_make_it")
    await w.withdraw_offers(w.case["booking"])


async def _fresh_provider(w: Any) -> None:
    """A provider of its own (two-strike rows): strikes and suspensions never touch P1/P2."""
    from tests.support.factories import make_provider

    w.case["provider"] = (await make_provider(display_name="Strike Target", latitude=4.2, longitude=9.9)).id


async def _ada_contract(w: Any, role: str) -> dict[str, Any]:
    """The current contract of A's request (made when P1 was assigned): its global id and hash."""
    from domain.orders import contract
    from models.db import session_scope

    async with session_scope() as s:
        made = await contract.current_contract(s, service_request_id=w.request_a.id)
    return {"id": w.gid("Contract", made.id), "sha256": made.sha256}


async def _contract_vars(w: Any, role: str) -> dict[str, Any]:
    return {"id": (await _ada_contract(w, role))["id"], "token": _guest_token(w, role)}


async def _accept_ada_contract(w: Any, role: str) -> dict[str, Any]:
    found = await _ada_contract(w, role)
    return {"contractId": found["id"], "sha256": found["sha256"], "accessToken": _guest_token(w, role)}


TABLE: dict[str, Row] = {
    # ============================ Query ==========================================================
    "serviceRequestStatusEventsSince": q(
        PUBLIC, "query($ref: String!) { serviceRequestStatusEventsSince(reference: $ref) { id status note } }",
        lambda w, role: {"ref": w.request_a.reference}),
    "bookingStatusEventsSince": q(
        roles(DENIED, customer_a=ALLOWED, provider_assigned=ALLOWED, admin=ALLOWED),
        "query($id: ID!) { bookingStatusEventsSince(bookingId: $id) { id status } }",
        lambda w, role: {"id": w.booking_a_gid}),
    "node": q(
        PARTIES_HIDDEN,
        "query($id: ID!) { node(id: $id) { id ... on ServiceRequest { reference customer { email phone } } } }",
        lambda w, role: {"id": w.request_a_gid}, personal=True),
    "providersNearby": q(
        PUBLIC, "query($near: GeoPointInput!) { providersNearby(near: $near, radiusKm: 10) { edges { node { provider { id } } } } }",
        lambda w, role: {"near": DOUALA}),
    "searchProviders": q(
        PUBLIC, "query($near: GeoPointInput!) { searchProviders(input: {near: $near, radiusKm: 10}) "
                "{ edges { node { provider { id } score } } } }",
        lambda w, role: {"near": DOUALA}),
    "services": q(PUBLIC, "{ services { id name } }"),
    "serviceRequest": q(
        PARTIES_HIDDEN,
        """query($ref: String!, $token: String) { serviceRequest(reference: $ref, accessToken: $token) {
             reference status customer { fullName email phone } affiliateCode conversation { id }
             receipt { netPaid { amountMinor } } settlement { providerShare { amountMinor } } disputes { id } } }""",
        lambda w, role: {"ref": w.request_a.reference, "token": _guest_token(w, role)}, personal=True),
    # Contracts: A's order contract, for her, its provider and admins; null for everyone else.
    "contract": q(
        PARTIES_HIDDEN,
        """query($id: ID!, $token: String) { contract(id: $id, accessToken: $token) {
             version sha256 body serviceRequest { id customer { email } } } }""",
        lambda w, role: _contract_vars(w, role), personal=True),
    "serviceRequests": q(
        OWN_LIST, "{ serviceRequests(first: 100) { totalCount edges { node { id reference customer { email } } } } }",
        personal=True),
    "me": q(PUBLIC, "{ me { id role } }"),
    "feeQuote": q(
        PUBLIC, "query($input: FeeQuoteInput!) { feeQuote(input: $input) { errors { code } } }",
        lambda w, role: {"input": {"serviceId": w.shop_service_gid, "tierId": w.shop_tier_gid}}),
    "myEarnings": q(PROVIDERS, "{ myEarnings { currency } }"),
    "myPayouts": q(PROVIDERS, "{ myPayouts { edges { node { id } } } }"),
    "myPayoutDestinations": q(PROVIDERS, "{ myPayoutDestinations { id } }"),
    "payouts": q(ADMIN_ONLY, "{ payouts { edges { node { id } } } }"),
    "disputes": q(ADMIN_ONLY, "{ disputes { edges { node { id } } } }"),
    "deadLetters": q(ADMIN_ONLY, "{ deadLetters { edges { node { id } } } }"),
    "reconciliationRuns": q(ADMIN_ONLY, "{ reconciliationRuns { id } }"),
    "flaggedPayments": q(ADMIN_ONLY, "{ flaggedPayments { reference } }"),
    "ledgerTrialBalance": q(ADMIN_ONLY, "{ ledgerTrialBalance { balanced } }"),
    # financial reports (schema/operations/reports.py): admin only, a one-day period around now
    "dailyRevenue": q(ADMIN_ONLY, f"{{ dailyRevenue({REPORT_PERIOD}) {{ day }} }}"),
    "payoutReport": q(ADMIN_ONLY, f"{{ payoutReport({REPORT_PERIOD}) {{ lines {{ status }} }} }}"),
    "disputeReport": q(ADMIN_ONLY, f"{{ disputeReport({REPORT_PERIOD}) {{ status }} }}"),
    "providerEarnings": q(ADMIN_ONLY, f"{{ providerEarnings({REPORT_PERIOD}) {{ providerId }} }}"),
    "affiliateCommissions": q(ADMIN_ONLY, f"{{ affiliateCommissions({REPORT_PERIOD}) {{ code }} }}"),
    "affiliateDashboard": q(
        ADMIN_ONLY, "query($code: String!) { affiliateDashboard(code: $code) { currency } }",
        lambda w, role: {"code": w.affiliate_code}),
    "availableSlots": q(
        PUBLIC, """query($p: ID!, $s: ID!, $from: DateTime!, $to: DateTime!) {
                     availableSlots(providerId: $p, serviceId: $s, from: $from, to: $to) { start } }""",
        lambda w, role: {"p": w.p1_gid, "s": w.bk_service_gid, **WINDOW}),
    "providersAvailable": q(
        PUBLIC, """query($near: GeoPointInput!, $from: DateTime!, $to: DateTime!) {
                     providersAvailable(near: $near, radiusKm: 10, from: $from, to: $to) { provider { id } } }""",
        lambda w, role: {"near": DOUALA, **WINDOW}),
    "booking": q(
        PARTIES_HIDDEN, "query($id: ID!) { booking(id: $id) { id status } }",
        lambda w, role: {"id": w.booking_a_gid}, personal=True),
    "myBookings": q(OWN_LIST, "{ myBookings(first: 100) { edges { node { id } } } }", personal=True),
    "myAvailability": q(PROVIDERS, "{ myAvailability { timeZone } }"),
    "ticket": q(
        PARTIES_HIDDEN, "query($id: ID!) { ticket(id: $id) { id reference } }",
        lambda w, role: {"id": w.ticket_a_gid}, personal=True),
    "myTickets": q(
        roles(HIDDEN, anonymous=DENIED, guest=DENIED, customer_a=ALLOWED, admin=ALLOWED),
        "{ myTickets(first: 100) { edges { node { id } } } }", personal=True),
    "ticketSlotSuggestions": q(
        CUSTOMER_OR_ADMIN, "query($id: ID!) { ticketSlotSuggestions(ticketId: $id) { matchedPreferred } }",
        lambda w, role: {"id": w.ticket_a_gid}),
    "mySubstitutionOffers": q(PROVIDERS, "{ mySubstitutionOffers { bookingId } }"),
    "escalations": q(ADMIN_ONLY, "{ escalations { edges { node { id } } } }"),
    "bookingStateMachine": q(PUBLIC, "{ bookingStateMachine { from to } }"),
    "myConversations": q(OWN_LIST, "{ myConversations(first: 100) { edges { node { id } } } }", personal=True),
    "chatMessagesSince": q(
        PARTIES, "query($id: ID!) { chatMessagesSince(conversationId: $id) { id body } }",
        lambda w, role: {"id": w.conversation_a_gid}),
    "notifications": q(
        roles(HIDDEN, anonymous=DENIED, guest=DENIED, customer_a=ALLOWED),
        "{ notifications(first: 100) { edges { node { id } } } }", personal=True),
    "unreadNotificationCount": q(LOGGED_IN, "{ unreadNotificationCount }"),
    "notificationsSince": q(
        roles(HIDDEN, anonymous=DENIED, guest=DENIED, customer_a=ALLOWED),
        "{ notificationsSince { id } }", personal=True),
    "myNotificationPreferences": q(LOGGED_IN, "{ myNotificationPreferences { emailOptOut } }"),
    "emails": q(ADMIN_ONLY, "{ emails { edges { node { id } } } }"),
    # Customers only, each its own data (B's export holds nothing of A's).
    "myDataExport": q(roles(DENIED, customer_a=ALLOWED, customer_b=HIDDEN), "{ myDataExport }", personal=True),
    "customerDataExport": q(ADMIN_ONLY, "query($id: ID!) { customerDataExport(userId: $id) }",
                            lambda w, role: {"id": w.gid("User", w.a.id)}),
    "auditLog": q(ADMIN_ONLY, "{ auditLog(first: 100) { edges { node { id action } } } }"),
    # --- provider onboarding --------------------------------------------------------------
    # Each account sees only its own application (Ada's draft is made by the mutation rows' setup).
    "myProviderApplication": q(LOGGED_IN, "{ myProviderApplication { id status phone } }"),
    "providerApplications": q(ADMIN_ONLY, "{ providerApplications(status: DRAFT) { edges { node { id phone } } } }"),
    # --- reviews and the two-strike policy ----------------------------------------------
    # The caller's own reviews (written or received): a list of its own; Ada has none in the world.
    "myReviews": q(LOGGED_IN, "{ myReviews { edges { node { id rating } } } }"),
    "flaggedProviders": q(ADMIN_ONLY, "{ flaggedProviders { edges { node { providerId } } } }"),
    "providerStanding": q(ADMIN_ONLY, "query($id: ID!) { providerStanding(providerId: $id) { strikeCount } }",
                          lambda w, role: {"id": w.p2_gid}),

    # ============================ Mutation =======================================================
    "register": m(PUBLIC, lambda w, role: {
        "email": f"new-{role.replace('_', '-')}@example.com", "password": "correct-horse-battery",
        "fullName": "New Person"}),
    "login": m(PUBLIC, lambda w, role: {"email": "nobody@example.com", "password": "not-the-password"}),
    "purchaseService": m(PUBLIC, lambda w, role: {
        "serviceId": w.shop_service_gid, "tierId": w.shop_tier_gid,
        "customer": {"fullName": "Buyer Person", "email": "buyer@example.com", "phone": "+237671234568"}}),
    "sendChatMessage": m(PARTIES, lambda w, role: {"conversationId": w.conversation_a_gid, "body": f"hi from {role}"}),
    "markConversationRead": m(PARTIES, lambda w, role: {"conversationId": w.conversation_a_gid}),
    "updateServiceRequestStatus": m(
        roles(DENIED, provider_assigned=ALLOWED, admin=ALLOWED),
        lambda w, role: {"id": w.gid("ServiceRequest", w.case["request"].id), "status": "IN_PROGRESS"},
        setup=_fresh_assigned_request),
    # Contracts: only the parties accept (admins: FORBIDDEN; others: NOT_FOUND). Idempotent.
    "acceptContract": m(roles(DENIED, customer_a=ALLOWED, provider_assigned=ALLOWED), _accept_ada_contract),
    "assignProvider": m(
        ADMIN_ONLY, lambda w, role: {"serviceRequestId": w.gid("ServiceRequest", w.case["request"].id),
                                     "providerId": w.p1_gid},
        setup=_fresh_paid_request),
    "verifyProvider": m(ADMIN_ONLY, lambda w, role: {"providerId": w.p2_gid}),
    # A's completed visit: its customer and its provider review it (once each; others NOT_FOUND, admins FORBIDDEN).
    "submitReview": m(roles(DENIED, customer_a=ALLOWED, provider_assigned=ALLOWED), lambda w, role: {
        "bookingId": w.gid("Booking", w.case["booking"]), "rating": 4}, setup=_booking_in("completed")),
    "recordStrike": m(ADMIN_ONLY, lambda w, role: {"providerId": w.gid("Provider", w.case["provider"]), "reason": "x"},
                      setup=_fresh_provider),
    "suspendProvider": m(ADMIN_ONLY, lambda w, role: {"providerId": w.gid("Provider", w.case["provider"]),
                                                      "reason": "x"}, setup=_fresh_provider),
    "reinstateProvider": m(ADMIN_ONLY, lambda w, role: {"providerId": w.gid("Provider", w.case["provider"]),
                                                        "note": "x"}, setup=_fresh_provider),
    "setAvailability": m(PROVIDERS, lambda w, role: {"available": True}),
    "setAcceptsUrgent": m(PROVIDERS, lambda w, role: {"acceptsUrgent": True}),
    "refundServiceRequest": m(
        ADMIN_ONLY, lambda w, role: {"serviceRequestId": w.gid("ServiceRequest", w.case["request"].id),
                                     "reason": "authz matrix"},
        setup=_fresh_assigned_request),
    "openDispute": m(
        CUSTOMER_OR_ADMIN, lambda w, role: {"serviceRequestId": w.gid("ServiceRequest", w.case["request"].id),
                                            "reason": "The tap still drips"},
        setup=_fresh_assigned_request),
    "resolveDispute": m(
        ADMIN_ONLY, lambda w, role: {"disputeId": w.gid("Dispute", w.case["dispute"]), "resolution": "RELEASE"},
        setup=_fresh_dispute),
    "replayDeadLetter": m(ADMIN_ONLY, lambda w, role: {"id": w.gid("DeadLetter", w.case["dead_letter"])},
                          setup=_fresh_dead_letter),
    "discardDeadLetter": m(ADMIN_ONLY, lambda w, role: {"id": w.gid("DeadLetter", w.case["dead_letter"])},
                           setup=_fresh_dead_letter),
    "runReconciliation": m(ADMIN_ONLY, lambda w, role: {}),
    "runPayouts": m(ADMIN_ONLY, lambda w, role: {}),
    "registerPayoutDestination": m(PROVIDERS, lambda w, role: {
        "kind": "MOBILE_MONEY", "currency": "XAF", "countryCode": "CM", "holderName": "Paul Pro",
        "phone": "+237671234569", "operator": "mtn", "makeDefault": False}),
    "disablePayoutDestination": m(
        roles(DENIED, provider_assigned=ALLOWED),
        lambda w, role: {"destinationId": w.gid("PayoutDestination", w.case["destination"])},
        setup=_fresh_destination),
    "requestPayout": m(PROVIDERS, lambda w, role: {"currency": "XAF", "idempotencyKey": f"authz-{role}"}),
    # Customers, and providers booking someone else's time; never a provider its own (self-dealing).
    "holdSlot": m(
        roles(DENIED, customer_a=ALLOWED, customer_b=ALLOWED, provider_other=ALLOWED),
        lambda w, role: {"providerId": w.p1_gid, "serviceId": w.bk_service_gid, "start": w.free_slot()}),
    "checkoutBooking": m(
        roles(DENIED, customer_a=ALLOWED), lambda w, role: {"bookingId": w.gid("Booking", w.case["booking"])},
        setup=_booking_in("held")),
    "changeBookingStatus": m(
        roles(DENIED, customer_a=ALLOWED, provider_assigned=ALLOWED, admin=ALLOWED),
        lambda w, role: {"bookingId": w.gid("Booking", w.case["booking"]), "status": {
            "provider_assigned": "ACCEPTED", "provider_other": "ACCEPTED", "admin": "CANCELLED_BY_ADMIN",
        }.get(role, "CANCELLED_BY_CUSTOMER")},
        setup=_booking_in("accepted")),
    # Customer A is a party: the state machine refuses her (INVALID_TRANSITION), authorisation does not.
    "bookFollowUp": m(
        roles(DENIED, customer_a=ALLOWED, provider_assigned=ALLOWED, admin=ALLOWED),
        lambda w, role: {"bookingId": w.gid("Booking", w.case["booking"]), "start": w.free_slot()},
        setup=_booking_in("in_progress")),
    "openBookingDispute": m(
        CUSTOMER_OR_ADMIN, lambda w, role: {"bookingId": w.gid("Booking", w.case["booking"]), "reason": "Still drips"},
        setup=_booking_in("completed")),
    "reviewBooking": m(
        roles(DENIED, customer_a=ALLOWED), lambda w, role: {"bookingId": w.gid("Booking", w.case["booking"]),
                                                            "rating": 5},
        setup=_booking_in("completed")),
    "takeOverBooking": m(
        roles(DENIED, admin=ALLOWED),
        lambda w, role: {"bookingId": w.gid("Booking", w.case["booking"]),
                         "providerId": w.p2_gid if role == "admin" else None},
        setup=_booking_without_offers),
    "setWeeklyPlan": m(PROVIDERS, lambda w, role: {"ranges": [
        {"weekday": d, "start": "08:00", "end": "18:00"}
        for d in ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")]}),
    "setDateException": m(PROVIDERS, lambda w, role: {"date": "2027-12-25", "ranges": []}),
    "clearDateException": m(PROVIDERS, lambda w, role: {"date": "2027-12-25"}),
    "setBookingRules": m(PROVIDERS, lambda w, role: {"minNoticeMinutes": 0, "bufferMinutes": 0, "horizonDays": 366}),
    "setServiceSlot": m(PROVIDERS, lambda w, role: {"serviceId": w.bk_service_gid, "slotMinutes": 60}),
    "setProviderTimeZone": m(PROVIDERS, lambda w, role: {"timeZone": "Africa/Douala"}),
    # Customers, and providers as customers of others (like holdSlot); not operators.
    "createTicket": m(
        roles(ALLOWED, anonymous=DENIED, guest=DENIED, admin=DENIED),
        lambda w, role: {"category": "plumbing", "appliance": "Kitchen sink", "location": DOUALA}),
    "cancelTicket": m(CUSTOMER_OR_ADMIN, lambda w, role: {"ticketId": w.gid("Ticket", w.case["ticket"])},
                      setup=_fresh_ticket),
    "resolveEscalation": m(ADMIN_ONLY, lambda w, role: {"escalationId": w.gid("Escalation", w.case["escalation"])},
                           setup=_fresh_escalation),
    "addApplianceModel": m(ADMIN_ONLY, lambda w, role: {"category": "plumbing", "brand": "Acme", "model": "X1"}),
    "markNotificationsRead": m(LOGGED_IN, lambda w, role: {"ids": [w.notification_a_gid]}),
    "setNotificationPreference": m(LOGGED_IN, lambda w, role: {"kind": "STATUS_CHANGED", "email": True}),
    "setEmailOptOut": m(LOGGED_IN, lambda w, role: {"optOut": False}),

    # --- identity: the credential is in the input, or the caller's own sign-in -----------
    "refreshToken": m(PUBLIC, lambda w, role: {"refreshToken": "not-a-refresh-token"}),
    "logout": m(LOGGED_IN, lambda w, role: {"everywhere": False}, own_session=True),
    "changePassword": m(LOGGED_IN, lambda w, role: {"currentPassword": "not-the-password",
                                                    "newPassword": "another-horse-battery"}),
    "requestPasswordReset": m(PUBLIC, lambda w, role: {"email": "nobody@example.com"}),
    "resetPassword": m(PUBLIC, lambda w, role: {"token": "not-a-reset-token", "newPassword": "another-horse-battery"}),
    "verifyEmail": m(PUBLIC, lambda w, role: {"token": "not-a-verification-token"}),
    "requestEmailVerification": m(PUBLIC, lambda w, role: {"email": "nobody@example.com"}),
    # Anyone signed in may turn MFA on for their own account (the admin already has: a typed error).
    "startMfaEnrolment": m(LOGGED_IN, lambda w, role: {"accountLabel": "Odim test"}),
    "confirmMfaEnrolment": m(LOGGED_IN, lambda w, role: {"code": "000000"}),
    "requestGuestAccessLinks": m(PUBLIC, lambda w, role: {"email": "nobody@example.com"}),
    # Signed-in accounts claim guest purchases made with their own VERIFIED email (else a typed error).
    "claimGuestPurchases": m(LOGGED_IN, lambda w, role: {"references": None}),

    # --- data protection ------------------------------------------------------------------
    # Wrong password: nothing is erased; providers and admins are not customers (NOT_A_CUSTOMER).
    "deleteMyAccount": m(roles(DENIED, customer_a=ALLOWED, customer_b=ALLOWED),
                         lambda w, role: {"password": "not-the-password"}),
    "deleteCustomerAccount": m(ADMIN_ONLY, lambda w, role: {"userId": w.gid("User", w.case["customer"])},
                               setup=_fresh_customer),

    # --- provider onboarding --------------------------------------------------------------
    # Any account but an operator may apply (approved providers get ALREADY_A_PROVIDER: allowed).
    "saveProviderApplication": m(roles(ALLOWED, anonymous=DENIED, guest=DENIED, admin=DENIED),
                                 lambda w, role: {"step": "CATEGORIES", "categories": ["plumbing"]}),
    # Over JSON the Upload variable holds no file: UNSUPPORTED_FILE_TYPE once authorisation passed.
    "uploadApplicationDocument": m(roles(ALLOWED, anonymous=DENIED, guest=DENIED, admin=DENIED),
                                   lambda w, role: {"kind": "ID_CARD", "file": "not-a-file"}),
    # Ada's document: only Ada (others, admins included, get NOT_FOUND).
    "removeApplicationDocument": m(roles(DENIED, customer_a=ALLOWED),
                                   lambda w, role: {"documentId": w.gid("ApplicationDocument", w.case["document"])},
                                   setup=_ada_application),
    # Ada's draft: only Ada (INCOMPLETE); Eve has none (NOT_FOUND); approved providers ALREADY_A_PROVIDER.
    "submitProviderApplication": m(roles(DENIED, customer_a=ALLOWED, provider_assigned=ALLOWED,
                                         provider_other=ALLOWED),
                                   lambda w, role: {"applicationId": w.gid("ProviderApplication",
                                                                           w.case["application"])},
                                   setup=_ada_application),
    # Admins decide (a draft: INVALID_TRANSITION, still "allowed").
    "approveProviderApplication": m(ADMIN_ONLY, lambda w, role: {
        "applicationId": w.gid("ProviderApplication", w.case["application"])}, setup=_ada_application),
    "rejectProviderApplication": m(ADMIN_ONLY, lambda w, role: {
        "applicationId": w.gid("ProviderApplication", w.case["application"]), "reason": "x"}, setup=_ada_application),
    "requestApplicationDocuments": m(ADMIN_ONLY, lambda w, role: {
        "applicationId": w.gid("ProviderApplication", w.case["application"]), "kinds": ["CERTIFICATE"],
        "message": "x"}, setup=_ada_application),

    # ============================ Subscription ===================================================
    "serviceRequestStatusChanged": s(
        PUBLIC, "subscription($ref: String!) { serviceRequestStatusChanged(reference: $ref, after: \"0\") { id status } }",
        lambda w, role: {"ref": w.request_a.reference}),
    "chatMessageAdded": s(
        PARTIES, "subscription($id: ID!) { chatMessageAdded(conversationId: $id, after: \"0\") { id body } }",
        lambda w, role: {"id": w.conversation_a_gid}),
    "bookingStatusChanged": s(
        PARTIES, "subscription($id: ID!) { bookingStatusChanged(bookingId: $id, after: \"0\") { id status } }",
        lambda w, role: {"id": w.booking_a_gid}),
    "notificationAdded": s(LOGGED_IN, "subscription { notificationAdded(after: \"0\") { id } }", lambda w, role: {}),
}
