"""Async engine and session factory, one per event loop.

asyncpg connections belong to the loop that opened them; Dramatiq's AsyncIO middleware runs actors
on a loop of its own (docs/pitfalls.md), so engines are created lazily, per running loop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session

from settings import get_settings

_engines: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _key() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def get_engine() -> AsyncEngine:
    """The engine bound to the running event loop (created on first use)."""
    return _get()[0]


def get_sessionmaker() -> async_sessionmaker[AsyncSession]:
    """``async_sessionmaker`` bound to the running loop's engine; sessions do not expire on commit."""
    return _get()[1]


def _get() -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    key = _key()
    pair = _engines.get(key)
    if pair is None:
        settings = get_settings()
        engine = create_async_engine(
            settings.database_url,
            pool_size=20,
            max_overflow=30,
            pool_pre_ping=True,
            # Parallel plans add 10-30 ms to small geosearch queries (docs/pitfalls.md).
            connect_args={"server_settings": {"max_parallel_workers_per_gather": "0", "jit": "off"}},
        )
        pair = (engine, async_sessionmaker(engine, expire_on_commit=False))
        _engines[key] = pair
    return pair


@event.listens_for(Session, "do_orm_execute")
def _refresh_locked_rows(state: ORMExecuteState) -> None:
    """A ``SELECT ... FOR [NO KEY] UPDATE`` always overwrites the objects already in the session
    with the row it locked (``populate_existing``). Without it, a row read earlier in the same
    session keeps its stale attributes after the lock wait, and a state machine would decide on a
    status that another transaction has just changed (the refund-events proof caught that)."""
    if state.is_select and state.statement._for_update_arg is not None:
        state.update_execution_options(populate_existing=True)


@asynccontextmanager
async def session_scope() -> AsyncIterator[AsyncSession]:
    """A session in a transaction: committed on success, rolled back on any exception."""
    async with get_sessionmaker()() as session:
        async with session.begin():
            yield session


async def dispose_engine() -> None:
    """Dispose of the running loop's engine (used at shutdown and between tests)."""
    pair = _engines.pop(_key(), None)
    if pair is not None:
        await pair[0].dispose()
