"""Counting the SQL statements a block runs (tests assert statement counts, never times)."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from models.db import get_engine


@contextmanager
def count_statements():
    """Every SQL statement the engine of this event loop runs inside the block."""
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = get_engine().sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
