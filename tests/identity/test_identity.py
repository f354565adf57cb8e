"""Identity and sessions: 15-minute access tokens, rotating refresh tokens whose reuse revokes
the family, logout (here and everywhere), password change and reset, email verification, admin TOTP MFA,
guest links and claims. Through the HTTP API, against the real database."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta

import jwt
import pyotp
import websockets
from sqlalchemy import func, select

from models import AccountToken, AuditEntry, AuthSession, Email, ServiceRequest, User
from models.db import session_scope
from resolvers.ids import encode_id
from settings import get_settings
from tests.support.factories import make_service, make_user
from tests.support.graphql_client import error_codes, gql
from tests.support.live_harness import Server

TOKENS = "tokens { accessToken accessTokenExpiresAt refreshToken }"
LOGIN = f"""mutation($input: LoginInput!) {{ login(input: $input) {{
  token {TOKENS} mfaEnrolmentRequired user {{ email role emailVerified mfaEnabled }} errors {{ field code message }} }} }}"""
REGISTER = f"""mutation($input: RegisterInput!) {{ register(input: $input) {{
  token {TOKENS} user {{ email emailVerified }} errors {{ field code message }} }} }}"""
REFRESH = f"""mutation($t: String!) {{ refreshToken(input: {{refreshToken: $t}}) {{ {TOKENS} errors {{ field code message }} }} }}"""
LOGOUT = """mutation($e: Boolean!) { logout(input: {everywhere: $e}) { sessionsEnded errors { code } } }"""
ME = "{ me { email role emailVerified mfaEnabled } }"
ADMIN_QUERY = "{ escalations { edges { cursor } } }"
PASSWORD = "correct-horse-battery"


async def login(client, email: str, password: str = PASSWORD, totp: str | None = None) -> dict:
    body = await gql(client, LOGIN, {"input": {"email": email, "password": password, "totpCode": totp}})
    return body["data"]["login"]


async def count(model, *where) -> int:
    async with session_scope() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))


async def emailed_token(template_kind: str, to: str) -> str:
    """The token in the newest stored email of ``template_kind`` to ``to`` (the link's ``token=``)."""
    async with session_scope() as s:
        body = await s.scalar(select(Email.body_text).where(Email.dedupe_key.like(f"{template_kind}:%"))
                              .order_by(Email.id.desc()).limit(1))
    assert body is not None, f"no {template_kind} email"
    return re.search(r"token=([A-Za-z0-9_\-]+)", body).group(1)


async def test_login_returns_a_15_minute_access_token_and_a_refresh_token(api_client):
    # Given an account
    await make_user("ada@example.com")
    # When it logs in
    payload = await login(api_client, "ada@example.com")
    # Then the access token lasts 900 s, names its session, and works
    assert payload["errors"] == []
    claims = jwt.decode(payload["token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    assert claims["sid"] > 0 and claims["mfa"] is False
    assert payload["tokens"]["accessToken"] == payload["token"]
    assert (await gql(api_client, ME, token=payload["token"]))["data"]["me"]["email"] == "ada@example.com"
    # And the password is stored as an argon2id hash
    async with session_scope() as s:
        assert (await s.scalar(select(User.password_hash))).startswith("$argon2id$")


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_whole_family(api_client):
    # Given a sign-in refreshed once
    await make_user("ada@example.com")
    first = (await login(api_client, "ada@example.com"))["tokens"]
    second = (await gql(api_client, REFRESH, {"t": first["refreshToken"]}))["data"]["refreshToken"]
    assert second["errors"] == []
    assert second["tokens"]["refreshToken"] != first["refreshToken"]
    assert (await gql(api_client, ME, token=second["tokens"]["accessToken"]))["data"]["me"] is not None
    # When the first (spent) refresh token is presented again
    reused = (await gql(api_client, REFRESH, {"t": first["refreshToken"]}))["data"]["refreshToken"]
    # Then it is refused as reused, and every token of that sign-in stops working
    assert reused == {"tokens": None, "errors": [{"field": "refreshToken", "code": "REFRESH_TOKEN_REUSED",
                      "message": "This refresh token was already used: the sign-in is revoked; log in again"}]}
    body = await gql(api_client, ME, token=second["tokens"]["accessToken"])
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["message"] == "This sign-in was signed out or revoked; log in again"
    again = (await gql(api_client, REFRESH, {"t": second["tokens"]["refreshToken"]}))["data"]["refreshToken"]
    assert [e["code"] for e in again["errors"]] == ["INVALID_REFRESH_TOKEN"]
    async with session_scope() as s:
        assert (await s.scalar(select(AuthSession.revoked_reason))) == "refresh_token_reused"


async def test_an_unknown_refresh_token_changes_nothing(api_client):
    await make_user("ada@example.com")
    tokens = (await login(api_client, "ada@example.com"))["tokens"]
    bad = (await gql(api_client, REFRESH, {"t": "not-a-token"}))["data"]["refreshToken"]
    assert [e["code"] for e in bad["errors"]] == ["INVALID_REFRESH_TOKEN"]
    assert await count(AuthSession, AuthSession.revoked_at.is_not(None)) == 0
    assert (await gql(api_client, ME, token=tokens["accessToken"]))["data"]["me"] is not None


async def test_logout_ends_this_sign_in_and_logout_everywhere_ends_all(api_client):
    # Given two sign-ins of one account (two devices)
    await make_user("ada@example.com")
    phone = (await login(api_client, "ada@example.com"))["tokens"]
    laptop = (await login(api_client, "ada@example.com"))["tokens"]
    # When the phone logs out
    out = (await gql(api_client, LOGOUT, {"e": False}, token=phone["accessToken"]))["data"]["logout"]
    # Then only the phone's tokens stop working
    assert out == {"sessionsEnded": 1, "errors": []}
    assert error_codes(await gql(api_client, ME, token=phone["accessToken"])) == ["UNAUTHENTICATED"]
    assert [e["code"] for e in (await gql(api_client, REFRESH, {"t": phone["refreshToken"]}))["data"]["refreshToken"]["errors"]] == ["INVALID_REFRESH_TOKEN"]
    assert (await gql(api_client, ME, token=laptop["accessToken"]))["data"]["me"] is not None
    # When a third sign-in logs out everywhere
    third = (await login(api_client, "ada@example.com"))["tokens"]
    out = (await gql(api_client, LOGOUT, {"e": True}, token=third["accessToken"]))["data"]["logout"]
    assert out == {"sessionsEnded": 2, "errors": []}
    assert error_codes(await gql(api_client, ME, token=laptop["accessToken"])) == ["UNAUTHENTICATED"]
    assert error_codes(await gql(api_client, ME, token=third["accessToken"])) == ["UNAUTHENTICATED"]


async def test_an_expired_access_token_is_unauthenticated_with_a_clear_message(api_client):
    # Given a token whose exp is past (signed with the real key)
    user = await make_user("ada@example.com")
    now = int(time.time())
    token = jwt.encode({"sub": str(user.id), "role": "customer", "sid": 1, "mfa": False, "iat": now - 1000,
                        "exp": now - 100}, get_settings().jwt_secret.get_secret_value(), algorithm="HS256")
    # When it is used
    body = await gql(api_client, ME, token=token)
    # Then UNAUTHENTICATED saying it expired
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["message"] == "Access token has expired; get a new one with refreshToken, or log in again"


async def test_websocket_refuses_expired_and_revoked_tokens_with_4403(api_client):

    await make_user("ada@example.com")
    revoked = (await login(api_client, "ada@example.com"))["tokens"]["accessToken"]
    await gql(api_client, LOGOUT, {"e": False}, token=revoked)
    now = int(time.time())
    expired = jwt.encode({"sub": "1", "role": "customer", "sid": 1, "mfa": False, "iat": now - 1000, "exp": now - 100},
                         get_settings().jwt_secret.get_secret_value(), algorithm="HS256")
    server = Server()
    await server.start()
    try:
        for token in (expired, revoked):
            async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"], origin=server.base) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                except websockets.ConnectionClosed as closed:
                    assert closed.rcvd.code == 4403
    finally:
        server.stop()
    # And each refusal is in the audit log
    async with session_scope() as s:
        rows = (await s.execute(select(AuditEntry.action, AuditEntry.outcome, AuditEntry.details["transport"].astext)
                                .where(AuditEntry.action == "authz.denied"))).all()
    assert rows == [("authz.denied", "denied", "ws"), ("authz.denied", "denied", "ws")]


async def test_change_password_revokes_every_sign_in_and_returns_a_new_one(api_client):
    await make_user("ada@example.com")
    other = (await login(api_client, "ada@example.com"))["tokens"]
    mine = (await login(api_client, "ada@example.com"))["tokens"]
    q = """mutation($i: ChangePasswordInput!) { changePassword(input: $i) { tokens { accessToken } errors { field code } } }"""
    wrong = (await gql(api_client, q, {"i": {"currentPassword": "nope-nope-nope", "newPassword": "another-long-pass"}},
                       token=mine["accessToken"]))["data"]["changePassword"]
    assert wrong == {"tokens": None, "errors": [{"field": None, "code": "INVALID_CREDENTIALS"}]}
    assert await count(AuthSession, AuthSession.revoked_at.is_not(None)) == 0
    done = (await gql(api_client, q, {"i": {"currentPassword": PASSWORD, "newPassword": "another-long-pass"}},
                      token=mine["accessToken"]))["data"]["changePassword"]
    assert done["errors"] == []
    assert error_codes(await gql(api_client, ME, token=other["accessToken"])) == ["UNAUTHENTICATED"]
    assert error_codes(await gql(api_client, ME, token=mine["accessToken"])) == ["UNAUTHENTICATED"]
    assert (await gql(api_client, ME, token=done["tokens"]["accessToken"]))["data"]["me"] is not None
    assert (await login(api_client, "ada@example.com"))["errors"][0]["code"] == "INVALID_CREDENTIALS"
    assert (await login(api_client, "ada@example.com", "another-long-pass"))["errors"] == []


async def test_password_reset_by_single_use_emailed_link(api_client):
    # Given an account signed in somewhere
    await make_user("ada@example.com")
    old = (await login(api_client, "ada@example.com"))["tokens"]
    ask = """mutation($e: String!) { requestPasswordReset(input: {email: $e}) { ok errors { code } } }"""
    reset = """mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { ok errors { field code message } } }"""
    # When someone asks for a reset of an unknown address, the answer is the same and nothing is sent
    assert (await gql(api_client, ask, {"e": "nobody@example.com"}))["data"]["requestPasswordReset"] == {"ok": True, "errors": []}
    assert await count(Email) == 0
    # When the owner asks
    assert (await gql(api_client, ask, {"e": "ADA@example.com"}))["data"]["requestPasswordReset"] == {"ok": True, "errors": []}
    token = await emailed_token("password_reset", "ada@example.com")
    # Then a weak password is refused and the link still works afterwards
    weak = (await gql(api_client, reset, {"t": token, "p": "short"}))["data"]["resetPassword"]
    assert [e["code"] for e in weak["errors"]] == ["WEAK_PASSWORD"]
    ok = (await gql(api_client, reset, {"t": token, "p": "brand-new-password"}))["data"]["resetPassword"]
    assert ok == {"ok": True, "errors": []}
    # And the link works once, old sign-ins are gone, the new password works
    again = (await gql(api_client, reset, {"t": token, "p": "another-new-password"}))["data"]["resetPassword"]
    assert again["errors"] == [{"field": "token", "code": "INVALID_TOKEN",
                                "message": "This link is invalid, was already used or has expired; ask for a new one"}]
    assert error_codes(await gql(api_client, ME, token=old["accessToken"])) == ["UNAUTHENTICATED"]
    assert (await login(api_client, "ada@example.com", "brand-new-password"))["errors"] == []
    # And the token is stored only as a hash
    async with session_scope() as s:
        assert token not in (await s.scalar(select(AccountToken.token_hash)))


async def test_an_expired_reset_link_is_refused(api_client):
    await make_user("ada@example.com")
    await gql(api_client, """mutation { requestPasswordReset(input: {email: "ada@example.com"}) { ok } }""")
    token = await emailed_token("password_reset", "ada@example.com")
    async with session_scope() as s:
        row = await s.scalar(select(AccountToken))
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    body = await gql(api_client, """mutation($t: String!) { resetPassword(input: {token: $t, newPassword: "brand-new-password"}) { ok errors { code } } }""", {"t": token})
    assert body["data"]["resetPassword"] == {"ok": False, "errors": [{"code": "INVALID_TOKEN"}]}
    assert (await login(api_client, "ada@example.com"))["errors"] == []


async def test_registration_emails_a_verification_link_that_works_once(api_client):
    body = await gql(api_client, REGISTER, {"input": {"email": "ada@example.com", "password": PASSWORD,
                                                      "fullName": "Ada Lovelace"}})
    assert body["data"]["register"]["user"] == {"email": "ada@example.com", "emailVerified": False}
    token = await emailed_token("email_verification", "ada@example.com")
    verify = """mutation($t: String!) { verifyEmail(input: {token: $t}) { user { emailVerified } errors { code } } }"""
    assert (await gql(api_client, verify, {"t": token}))["data"]["verifyEmail"] == {"user": {"emailVerified": True}, "errors": []}
    assert (await gql(api_client, verify, {"t": token}))["data"]["verifyEmail"] == {"user": None, "errors": [{"code": "INVALID_TOKEN"}]}


async def test_admins_must_enrol_and_present_totp_before_any_admin_action(api_client):
    # Given an admin without MFA
    await make_user("ops@example.com", role="admin")
    first = await login(api_client, "ops@example.com")
    # Then the sign-in can only enrol: admin actions are refused, me still works
    assert first["mfaEnrolmentRequired"] is True
    token = first["token"]
    refused = await gql(api_client, ADMIN_QUERY, token=token)
    assert error_codes(refused) == ["FORBIDDEN"] and "MFA_REQUIRED" in refused["errors"][0]["message"]
    assert (await gql(api_client, ME, token=token))["data"]["me"]["mfaEnabled"] is False
    # When it enrols with a wrong code, then the right one
    start = (await gql(api_client, "mutation { startMfaEnrolment { secret otpauthUri errors { code } } }",
                       token=token))["data"]["startMfaEnrolment"]
    assert start["otpauthUri"].startswith("otpauth://totp/Odim:ops%40example.com?secret=")
    totp = pyotp.TOTP(start["secret"])
    confirm = """mutation($c: String!) { confirmMfaEnrolment(input: {code: $c}) { tokens { accessToken } errors { field code } } }"""
    bad = (await gql(api_client, confirm, {"c": "000000" if totp.now() != "000000" else "111111"}, token=token))
    assert bad["data"]["confirmMfaEnrolment"] == {"tokens": None, "errors": [{"field": "code", "code": "INVALID_MFA_CODE"}]}
    now = time.time()
    good = (await gql(api_client, confirm, {"c": totp.at(now)}, token=token))["data"]["confirmMfaEnrolment"]
    assert good["errors"] == []
    # Then the MFA sign-in may act as admin, and the enrolment sign-in is gone
    assert (await gql(api_client, ADMIN_QUERY, token=good["tokens"]["accessToken"]))["data"]["escalations"] == {"edges": []}
    assert error_codes(await gql(api_client, ME, token=token)) == ["UNAUTHENTICATED"]
    # And logging in now needs a code; a code is accepted once
    assert [e["code"] for e in (await login(api_client, "ops@example.com"))["errors"]] == ["MFA_REQUIRED"]
    assert [e["code"] for e in (await login(api_client, "ops@example.com", totp=totp.at(now)))["errors"]] == ["INVALID_MFA_CODE"]
    later = await login(api_client, "ops@example.com", totp=totp.at(now + 30))
    assert later["errors"] == [] and later["mfaEnrolmentRequired"] is False
    assert jwt.decode(later["token"], options={"verify_signature": False})["mfa"] is True
    assert [e["code"] for e in (await login(api_client, "ops@example.com", totp=totp.at(now + 30)))["errors"]] == ["INVALID_MFA_CODE"]
    assert [e["code"] for e in (await login(api_client, "ops@example.com", "wrong-password!", totp=totp.at(now + 60)))["errors"]] == ["INVALID_CREDENTIALS"]


async def test_a_guest_gets_magic_links_and_claims_its_purchases_once_its_email_is_verified(api_client):
    # Given a guest purchase
    service, tiers = await make_service(tiers=1)
    bought = await gql(api_client, """mutation($i: PurchaseServiceInput!) { purchaseService(input: $i) {
        serviceRequest { reference } errors { code } } }""", {"i": {
        "serviceId": encode_id("Service", service.id),
        "customer": {"fullName": "Grace Guest", "email": "grace@example.com", "phone": "+237671234567"}}})
    reference = bought["data"]["purchaseService"]["serviceRequest"]["reference"]
    # When the guest asks for its links
    links = """mutation($e: String!) { requestGuestAccessLinks(input: {email: $e}) { ok errors { code } } }"""
    assert (await gql(api_client, links, {"e": "GRACE@example.com"}))["data"]["requestGuestAccessLinks"] == {"ok": True, "errors": []}
    # Then the emailed link is the signed tracking link, and it shows the guest's details
    async with session_scope() as s:
        body = await s.scalar(select(Email.body_text).where(Email.dedupe_key.like("guest_links:%")))
    access = re.search(rf"/track/{reference}\?token=(\S+)", body).group(1)
    track = await gql(api_client, """query($r: String!, $t: String) { serviceRequest(reference: $r, accessToken: $t) {
        customer { email } } }""", {"r": reference, "t": access})
    assert track["data"]["serviceRequest"] == {"customer": {"email": "grace@example.com"}}
    # When the guest registers with the same email, claiming waits for the verification
    reg = (await gql(api_client, REGISTER, {"input": {"email": "grace@example.com", "password": PASSWORD,
                                                     "fullName": "Grace Guest"}}))["data"]["register"]
    claim = "mutation { claimGuestPurchases { claimedReferences errors { code } } }"
    early = (await gql(api_client, claim, token=reg["token"]))["data"]["claimGuestPurchases"]
    assert early == {"claimedReferences": [], "errors": [{"code": "EMAIL_NOT_VERIFIED"}]}
    assert await count(ServiceRequest, ServiceRequest.customer_user_id.is_not(None)) == 0
    token = await emailed_token("email_verification", "grace@example.com")
    await gql(api_client, "mutation($t: String!) { verifyEmail(input: {token: $t}) { errors { code } } }", {"t": token})
    done = (await gql(api_client, claim, token=reg["token"]))["data"]["claimGuestPurchases"]
    # Then the purchase is the account's
    assert done == {"claimedReferences": [reference], "errors": []}
    mine = await gql(api_client, "{ serviceRequests { edges { node { reference } } } }", token=reg["token"])
    assert mine["data"]["serviceRequests"]["edges"] == [{"node": {"reference": reference}}]


async def test_unknown_guest_email_gets_the_same_answer_and_no_mail(api_client):
    body = await gql(api_client, """mutation { requestGuestAccessLinks(input: {email: "nobody@example.com"}) { ok errors { code } } }""")
    assert body["data"]["requestGuestAccessLinks"] == {"ok": True, "errors": []}
    assert await count(Email) == 0


async def test_a_live_socket_is_closed_with_4403_when_its_token_expires_or_its_sign_in_is_revoked(api_client):
    # Given two sockets of one account: one whose access token expires in 3 s, one on a sign-in that
    # is then signed out
    await make_user("ada@example.com")
    short = (await login(api_client, "ada@example.com"))["token"]
    revoked = (await login(api_client, "ada@example.com"))["token"]
    server = Server(ODIM_WS_SESSION_CHECK_SECONDS="1")
    await server.start()
    try:
        # (the expiry is set once the server is up: a slow start must not expire it before connecting)
        claims = jwt.decode(short, options={"verify_signature": False})
        claims["exp"] = int(time.time()) + 4
        short = jwt.encode(claims, get_settings().jwt_secret.get_secret_value(), algorithm="HS256")
        sockets = []
        for token in (short, revoked):
            ws = await websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"], origin=server.base)
            await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": "subscription { notificationAdded { id } }"}}))
            sockets.append(ws)
        await gql(api_client, LOGOUT, {"e": False}, token=revoked)
        # Then each is closed with 4403 and a reason saying why
        reasons = []
        for ws in sockets:
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 15)
            except websockets.ConnectionClosed as closed:
                reasons.append((closed.rcvd.code, closed.rcvd.reason))
        assert reasons == [(4403, "Access token expired; reconnect with a fresh token"),
                           (4403, "This sign-in was signed out or revoked; log in again")]
    finally:
        server.stop()


async def test_login_attempts_past_the_per_email_limit_are_refused_before_the_password_is_checked(api_client, monkeypatch):
    # Given a limit of 2 logins a minute per email
    await make_user("ada@example.com")
    monkeypatch.setattr(get_settings(), "rate_limit_login", "2/minute")
    for _ in range(2):
        assert [e["code"] for e in (await login(api_client, "ada@example.com", "wrong-password!"))["errors"]] == [
            "INVALID_CREDENTIALS"]
    # When a third attempt comes, even with the right password
    response = await api_client.post("/graphql", json={"query": LOGIN, "variables": {"input": {
        "email": "ada@example.com", "password": PASSWORD}}})
    # Then it is refused with 429, Retry-After and a typed error, and no sign-in is made
    payload = response.json()["data"]["login"]
    assert response.status_code == 429 and 1 <= int(response.headers["retry-after"]) <= 60
    assert payload["token"] is None and [e["code"] for e in payload["errors"]] == ["RATE_LIMITED"]
    assert await count(AuthSession) == 0
    # And another address is not affected
    await make_user("bob@example.com")
    assert (await login(api_client, "bob@example.com"))["errors"] == []
