"""Chat in tests: a one-tier shop, a paid and assigned request's conversation with its cast
(``make_room``), and no practical sending rate limit. The messaging tests' fixtures
(tests/messaging/conftest.py) are built from these."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from domain.orders import service_request as sr
from models import Conversation, User
from models.db import session_scope
from resolvers.ids import encode_id
from settings import get_settings
from tests.support.factories import make_provider, make_service, make_user
from tests.support.orders import Shop, domain_purchase, pay


@dataclass
class Chat:
    reference: str
    conversation_id: int
    conversation_gid: str
    customer: User
    provider_user: User
    admin: User
    other_customer: User
    other_provider_user: User


async def make_shop() -> Shop:
    service, tiers = await make_service(name="Leak repair", tiers=1, prices={"XAF": 10000})
    return Shop(service.id, [tiers[0].id], service.id, tiers[0].id)


async def make_room(shop_for_chat: Shop) -> Chat:
    """Ada's paid request, assigned to pro@'s provider; its conversation has no messages yet. Also:
    eve@ (another customer) and other@ (a provider not assigned to it)."""
    customer = await make_user("ada@example.com", full_name="Ada Eko")
    admin = await make_user("ops@example.com", role="admin", full_name="Odim Ops")
    provider_user = await make_user("pro@example.com", role="provider", full_name="Paul Pro")
    provider = await make_provider(user_id=provider_user.id)
    eve = await make_user("eve@example.com", full_name="Eve Other")
    other_provider_user = await make_user("other@example.com", role="provider", full_name="Olga Other")
    await make_provider(user_id=other_provider_user.id, display_name="Other Plumbing")
    request = await domain_purchase(shop_for_chat, customer)
    await pay(request.id)
    async with session_scope() as s:
        await sr.assign_provider(s, request.id, provider.id, actor=admin)
        conversation_id = await s.scalar(select(Conversation.id).where(Conversation.service_request_id == request.id))
    return Chat(request.reference, conversation_id, encode_id("Conversation", conversation_id), customer,
                provider_user, admin, eve, other_provider_user)


def no_rate_limit(monkeypatch) -> None:
    """No practical sending rate limit (for tests that send many messages from one account)."""
    monkeypatch.setattr(get_settings(), "chat_rate_limit", "1000000/minute")
