"""Declarative base, shared column helpers and the naming convention used by Alembic."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Fetch server-generated values (ids, timestamps) with RETURNING at flush time, so an async
    # session never needs a lazy load to read them.
    __mapper_args__ = {"eager_defaults": True}


def pk() -> Mapped[int]:
    return mapped_column(BigInteger, primary_key=True, autoincrement=True)


def created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def updated_at() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


def sql_in(values: Iterable[str] | type[StrEnum]) -> str:
    """``('a', 'b')``: the SQL list of a CHECK or partial-index ``IN``, from a status ``StrEnum`` (its
    values, in declaration order) or any iterable of plain strings. One source for the database's list
    and the code's."""
    return "(" + ", ".join("'" + str(v) + "'" for v in values) + ")"
