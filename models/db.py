"""Engine and session factory for SQLite (embedded) and PostgreSQL alike."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

PG_CONNECT_TIMEOUT_S = 10


def make_engine(url: str | URL, *, pool_size: int = 10, max_overflow: int = 10, **kwargs) -> Engine:
    """An engine for `url`. SQL parameters (e-mail addresses, names, webhook payloads) never
    appear in an error message or a log line: `hide_parameters=True`. `pool_size` and
    `max_overflow` (BILLING_DATABASE_POOL_SIZE / _MAX_OVERFLOW) apply to PostgreSQL; SQLite has
    one writer anyway."""
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _serialize_sqlite_writers(engine)
        return engine
    if parsed.drivername == "postgresql":  # plain postgresql:// means psycopg 3 here
        url = parsed.set(drivername="postgresql+psycopg")
    # A black-holed server would otherwise hold a connect (and whoever waits for it) forever.
    kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S, **kwargs.get("connect_args", {})}
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, **kwargs)


def _serialize_sqlite_writers(engine: Engine) -> None:
    """SQLite has no row locks: every transaction takes the write lock up front (BEGIN IMMEDIATE),
    which gives the one-writer-at-a-time rule in embedded mode."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
