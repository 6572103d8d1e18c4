"""The Alembic migrations and the SQLAlchemy models describe the same schema on PostgreSQL."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from billing_sync.models import Base


def test_migrations_match_models_on_postgres(pg_engine):
    with pg_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
