"""Alembic environment: the URL comes from the caller (billing-sync db upgrade), not an ini file."""
from alembic import context

from billing_sync.models.db import make_engine
from billing_sync.models.tables import Base

config = context.config
connection = config.attributes.get("connection")


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic: no sqlalchemy.url (billing-sync db upgrade passes it)")
    engine = make_engine(url)
    with engine.connect() as conn:
        run(conn)
    engine.dispose()
