"""Accounts in GraphQL."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

import strawberry
from strawberry import relay

from models import User as UserModel
from resolvers import user as user_resolvers
from schema.common import coded_errors


@strawberry.enum
class UserRole(Enum):
    CUSTOMER = "customer"
    PROVIDER = "provider"
    ADMIN = "admin"


@strawberry.type
class User(relay.Node):
    id: relay.NodeID[int]
    email: str
    full_name: str
    phone: str | None
    role: UserRole

    @classmethod
    def of(cls, user: UserModel) -> "User":
        return cls(id=user.id, email=user.email, full_name=user.full_name, phone=user.phone, role=UserRole(user.role))

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        users = await user_resolvers.user_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(u) if u else None for u in users]


@strawberry.enum
class AccountErrorCode(Enum):
    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PHONE = "INVALID_PHONE"
    INVALID_NAME = "INVALID_NAME"
    WEAK_PASSWORD = "WEAK_PASSWORD"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    INVALID = "INVALID"


@strawberry.type
class AccountError:
    field: str | None
    code: AccountErrorCode
    message: str


@strawberry.input
class RegisterInput:
    email: str
    password: str = strawberry.field(description="At least 10 characters.")
    full_name: str
    phone: str | None = strawberry.field(default=None, description="International form, e.g. +237671234567.")


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.type
class RegisterPayload:
    token: str | None = strawberry.field(description="JWT access token: send as `Authorization: Bearer <token>`.")
    user: User | None
    errors: list[AccountError]


@strawberry.type
class LoginPayload:
    token: str | None
    user: User | None
    errors: list[AccountError]


def account_errors(errors) -> list[AccountError]:
    return coded_errors(AccountErrorCode, AccountError, errors)
