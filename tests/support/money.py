"""Money in tests: ``clean_money_tables``, an autouse fixture for the modules that import it (the
gateway registry reset around each test, so no gateway override leaks from one test to the next)."""

from __future__ import annotations

import pytest_asyncio
from sqlalchemy import text

from gateways import registry
from models.db import get_engine


@pytest_asyncio.fixture(autouse=True)
async def clean_money_tables():
    """The money tables conftest's truncation does not reach (ledger accounts keep balances), and
    no gateway override left from another test."""
    async with get_engine().begin() as conn:
        await conn.execute(text(
            "TRUNCATE ledger_accounts, ledger_entries, ledger_transactions, idempotency_keys, payout_status_history, "
            "provider_earnings, payouts, payout_destinations, disputes, refunds RESTART IDENTITY CASCADE"
        ))
    registry.reset()
    yield
    registry.reset()
