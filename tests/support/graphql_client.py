"""A tiny GraphQL-over-HTTP client for in-process tests (httpx ``ASGITransport`` against ``server.app``)."""

from __future__ import annotations

from typing import Any

import httpx

LOGIN = """
mutation Login($input: LoginInput!) {
  login(input: $input) { token mfaEnrolmentRequired errors { field code message } }
}
"""


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None,
              token: str | None = None) -> dict:
    """POST ``query`` to /graphql (as ``Authorization: Bearer <token>`` when given) and return the
    JSON response (``{"data": ..., "errors": [...]}``) whatever the HTTP status."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    return response.json()


async def login(client: httpx.AsyncClient, email: str, password: str = "correct-horse-battery") -> str:
    """The access token of the account ``email`` (the factories' default password unless given). An
    admin without MFA gets a sign-in made as if it had presented a TOTP code (tests/factories.token_for),
    so admin tests need not run the TOTP flow, which tests/identity/test_identity.py covers."""
    body = await gql(client, LOGIN, {"input": {"email": email, "password": password}})
    payload = body["data"]["login"]
    assert payload["errors"] == [], payload["errors"]
    if payload["mfaEnrolmentRequired"]:
        from domain.identity.user import find_by_email
        from models.db import session_scope
        from tests.support.factories import token_for

        async with session_scope() as s:
            user = await find_by_email(s, email)
        return await token_for(user)
    return payload["token"]


def error_codes(body: dict) -> list[str | None]:
    """The ``extensions.code`` of each top-level error of a response."""
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
