"""Accounts over GraphQL: register, login, `me`, and how bad tokens are refused."""

from __future__ import annotations

import time

import jwt
from argon2 import PasswordHasher
from sqlalchemy import func, select

from models import User
from models.db import session_scope
from resolvers.ids import encode_id
from settings import get_settings
from tests.support.factories import make_user
from tests.support.graphql_client import gql, login

REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) {
    token
    user { id email fullName phone role }
    errors { field code message }
  }
}
"""
LOGIN = """
mutation Login($input: LoginInput!) {
  login(input: $input) { token user { email role } errors { field code message } }
}
"""
ME = "query { me { id email fullName phone role } }"


def register_input(**overrides: object) -> dict:
    return {"email": "ada@example.com", "password": "correct-horse-battery", "fullName": "Ada Eko",
            "phone": "+237 6 71 23 45 67", **overrides}


async def user_count() -> int:
    async with session_scope() as s:
        return await s.scalar(select(func.count()).select_from(User))


async def test_register_returns_a_working_token_and_the_user_and_stores_an_argon2id_hash(api_client):
    # when
    body = await gql(api_client, REGISTER, {"input": register_input()})
    # then
    payload = body["data"]["register"]
    assert payload["errors"] == []
    async with session_scope() as s:
        stored = await s.scalar(select(User).where(User.email == "ada@example.com"))
    assert payload["user"] == {"id": encode_id("User", stored.id), "email": "ada@example.com", "fullName": "Ada Eko",
                               "phone": "+237671234567", "role": "CUSTOMER"}
    assert stored.password_hash.startswith("$argon2id$")
    assert "correct-horse-battery" not in stored.password_hash
    assert PasswordHasher().verify(stored.password_hash, "correct-horse-battery")
    me = await gql(api_client, ME, token=payload["token"])
    assert me == {"data": {"me": payload["user"]}}


async def test_register_with_an_email_taken_in_another_case_is_refused(api_client):
    # given
    await make_user("ada@example.com")
    # when
    body = await gql(api_client, REGISTER, {"input": register_input(email="ADA@Example.com")})
    # then
    assert body["data"]["register"] == {
        "token": None, "user": None,
        "errors": [{"field": "email", "code": "EMAIL_TAKEN", "message": "An account with this email already exists"}],
    }
    assert await user_count() == 1


async def test_register_with_an_invalid_email_is_refused_and_nothing_is_stored(api_client):
    body = await gql(api_client, REGISTER, {"input": register_input(email="ada.example.com")})
    assert body["data"]["register"] == {
        "token": None, "user": None,
        "errors": [{"field": "email", "code": "INVALID_EMAIL", "message": "An email address must have an @-sign."}],
    }
    assert await user_count() == 0


async def test_register_with_a_weak_password_is_refused_and_nothing_is_stored(api_client):
    body = await gql(api_client, REGISTER, {"input": register_input(password="short-pw1")})
    assert body["data"]["register"] == {
        "token": None, "user": None,
        "errors": [{"field": "password", "code": "WEAK_PASSWORD",
                    "message": "Password must have at least 10 characters"}],
    }
    assert await user_count() == 0


async def test_register_with_an_invalid_phone_is_refused_and_nothing_is_stored(api_client):
    body = await gql(api_client, REGISTER, {"input": register_input(phone="+237123")})
    assert body["data"]["register"] == {
        "token": None, "user": None,
        "errors": [{"field": "phone", "code": "INVALID_PHONE",
                    "message": "Not a valid phone number for its country; use the international form, "
                               "e.g. +237 6 71 23 45 67"}],
    }
    assert await user_count() == 0


async def test_login_with_the_right_password_returns_a_token_for_that_account(api_client):
    # given
    await make_user("ada@example.com", role="provider")
    # when
    body = await gql(api_client, LOGIN, {"input": {"email": "Ada@Example.com", "password": "correct-horse-battery"}})
    # then
    payload = body["data"]["login"]
    assert payload["errors"] == []
    assert payload["user"] == {"email": "ada@example.com", "role": "PROVIDER"}
    claims = jwt.decode(payload["token"], get_settings().jwt_secret.get_secret_value(), algorithms=["HS256"])
    assert claims["role"] == "provider"
    me = await gql(api_client, ME, token=payload["token"])
    assert me["data"]["me"]["email"] == "ada@example.com"


async def test_login_with_a_wrong_password_or_an_unknown_email_gives_the_same_error(api_client):
    # given
    await make_user("ada@example.com")
    expected = {"token": None, "user": None,
                "errors": [{"field": None, "code": "INVALID_CREDENTIALS", "message": "Email or password is incorrect"}]}
    # when
    wrong_password = await gql(api_client, LOGIN, {"input": {"email": "ada@example.com", "password": "wrong-password-1"}})
    unknown_email = await gql(api_client, LOGIN, {"input": {"email": "bob@example.com", "password": "correct-horse-battery"}})
    # then
    assert wrong_password["data"]["login"] == expected
    assert unknown_email["data"]["login"] == expected


async def test_me_is_null_for_anonymous_callers(api_client):
    assert await gql(api_client, ME) == {"data": {"me": None}}


async def test_an_expired_token_is_refused_with_unauthenticated(api_client):
    # given: a token correctly signed but expired an hour ago
    user = await make_user("ada@example.com")
    now = int(time.time())
    token = jwt.encode({"sub": str(user.id), "role": "customer", "iat": now - 7200, "exp": now - 3600},
                       get_settings().jwt_secret.get_secret_value(), algorithm="HS256")
    # when
    body = await gql(api_client, ME, token=token)
    # then
    assert body["data"] == {"me": None}
    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
        ("Access token has expired; get a new one with refreshToken, or log in again", "UNAUTHENTICATED")
    ]


async def test_a_garbage_or_forged_token_is_refused_with_unauthenticated(api_client):
    # given
    user = await make_user("ada@example.com")
    now = int(time.time())
    forged = jwt.encode({"sub": str(user.id), "role": "admin", "iat": now, "exp": now + 3600},
                        "not-the-server-secret-0123456789abcdef", algorithm="HS256")
    for token in ("garbage", forged):
        # when
        body = await gql(api_client, ME, token=token)
        # then
        assert body["data"] == {"me": None}
        assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
            ("Access token is invalid; log in again", "UNAUTHENTICATED")
        ]


async def test_login_helper_token_identifies_the_account(api_client):
    await make_user("ada@example.com", full_name="Ada Eko")
    token = await login(api_client, "ada@example.com")
    body = await gql(api_client, ME, token=token)
    assert body["data"]["me"]["fullName"] == "Ada Eko"
