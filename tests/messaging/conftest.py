"""Fixtures of the messaging tests: ``shop_for_chat`` (a one-tier service), ``room`` (a paid, assigned
request's conversation and its cast) and ``unlimited`` (no practical sending rate limit)."""

from __future__ import annotations

import pytest

from tests.support.chat import Chat, make_room, make_shop, no_rate_limit
from tests.support.orders import Shop


@pytest.fixture
async def shop_for_chat() -> Shop:
    return await make_shop()


@pytest.fixture
async def room(shop_for_chat) -> Chat:
    return await make_room(shop_for_chat)


@pytest.fixture
def unlimited(monkeypatch) -> None:
    no_rate_limit(monkeypatch)
