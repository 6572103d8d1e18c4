"""The Alembic migrations and the SQLAlchemy models describe the same schema."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from billing_sync.models import Base


def _diff(engine):
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def test_migrations_match_models_on_sqlite(sqlite_engine):
    assert _diff(sqlite_engine) == []


def test_migrations_match_models_on_postgres(pg_engine):
    assert _diff(pg_engine) == []
