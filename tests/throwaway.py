"""What a test makes for itself and removes afterwards: a migrated PostgreSQL database, and a
Stripe emulator that already holds the plan catalog. Used by the root, chaos and e2e fixtures."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from services import PG_ADMIN_URL, reach

# psycopg itself takes no SQLAlchemy driver name
ADMIN_URL = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def migrated_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database `<prefix>_<random>` migrated to head (its URL), dropped on exit,
    also when the test or the migration failed. PostgreSQL down: the test fails with one line."""
    import psycopg

    from billing_sync.models.migrate import upgrade

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with reach("postgres", ADMIN_URL, lambda: psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5),
               psycopg.OperationalError) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_emulator_with_catalog(**options):
    """A started Stripe emulator (`EmulatorServer(**options)`) holding the default catalog's
    products, prices and meters; the caller stops it."""
    from billing_sync.bms.catalog_sync import ensure_catalog
    from billing_sync.bms.gateway import StripeGateway
    from billing_sync.config.catalog import load_catalog
    from billing_sync.config.settings import DEFAULT_CATALOG
    from billing_sync_emulator.server import EmulatorServer

    server = EmulatorServer(**options).start()
    try:
        ensure_catalog(StripeGateway("sk_test_seed", api_base=server.url), load_catalog(DEFAULT_CATALOG))
    except BaseException:
        server.stop()
        raise
    return server
