"""Insert-if-missing, the one race-safe way to create a row that concurrent transactions may
create too (a tenant, a product, a command's inbox row)."""
from __future__ import annotations

from typing import cast

from sqlalchemy import FromClause, Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def insert_if_missing(session: Session, table: FromClause, values: dict, key: str = "id") -> None:
    """INSERT … ON CONFLICT (key) DO NOTHING: when a concurrent transaction inserts the same row,
    PostgreSQL makes this one wait for it and then skip, instead of failing. `key` is a column
    with a unique constraint (the primary key by default)."""
    table = cast(Table, table)  # a declarative model's `__table__` is typed FromClause; it is a Table
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(table).values(values).on_conflict_do_nothing(index_elements=[key]))
    elif dialect == "sqlite":
        session.execute(sqlite_insert(table).values(values).on_conflict_do_nothing(index_elements=[key]))
    else:  # pragma: no cover - other databases: best effort
        if session.execute(select(table.c[key]).where(table.c[key] == values[key])).first() is None:
            session.execute(insert(table).values(values))
