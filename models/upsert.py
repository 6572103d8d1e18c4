"""Insert-if-missing, the one race-safe way to create a row that concurrent transactions may
create too (a tenant, a product, a command's inbox row)."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import FromClause, Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def insert_if_missing(session: Session, table: FromClause, values: dict, key: str = "id") -> None:
    """INSERT … ON CONFLICT (key) DO NOTHING: when a concurrent transaction inserts the same row,
    PostgreSQL makes this one wait for it and then skip, instead of failing. `key` is a column
    with a unique constraint (the primary key by default)."""
    table = cast(Table, table)  # a declarative model's `__table__` is typed FromClause; it is a Table
    upsert = dialect_insert(session, table)
    if upsert is not None:
        session.execute(upsert.values(values).on_conflict_do_nothing(index_elements=[key]))
    else:  # pragma: no cover - other databases: best effort
        if session.execute(select(table.c[key]).where(table.c[key] == values[key])).first() is None:
            session.execute(insert(table).values(values))


def dialect_insert(session: Session, table: FromClause) -> Any:
    """The dialect's INSERT that has `on_conflict_do_nothing` / `on_conflict_do_update`
    (PostgreSQL, SQLite); None for other databases."""
    dialect = session.get_bind().dialect.name
    target = cast(Table, table)
    if dialect == "postgresql":
        return pg_insert(target)
    if dialect == "sqlite":
        return sqlite_insert(target)
    return None  # pragma: no cover
