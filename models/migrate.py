"""Apply the Alembic migrations (billing-sync db upgrade), on SQLite and PostgreSQL alike."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .db import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def at_head(url: str) -> bool:
    """Whether the database's schema is at this code's newest migration (`db wait`). Raises
    the driver's error when the database does not answer."""
    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads()) == heads
    finally:
        engine.dispose()


def schema_revisions(url: str) -> dict[str, str | None]:
    """The database's revision (None: no schema yet) and the newest the code has."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
    return {"current": heads[0] if heads else None, "head": head}


def migration_history(url: str) -> list[dict[str, object]]:
    """Every revision, newest first: id, parent, description, and whether the database is at it."""
    from alembic.script import ScriptDirectory

    current = schema_revisions(url)["current"]
    return [{"revision": rev.revision, "down_revision": rev.down_revision,
             "description": " ".join((rev.doc or "").split()), "current": rev.revision == current}
            for rev in ScriptDirectory.from_config(alembic_config(url)).walk_revisions()]
