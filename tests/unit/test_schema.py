"""The Alembic migrations and the SQLAlchemy models describe the same schema (on SQLite here; on
PostgreSQL in tests/integration/test_schema_pg.py)."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from billing_sync.models import Base


def test_migrations_match_models_on_sqlite(sqlite_engine):
    with sqlite_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
