"""`billing-sync db wait` (what each role's init container runs on Kubernetes before it starts):
exit 0 once the schema is at head, exit 1 after --timeout while it is behind or unreachable."""
from __future__ import annotations

import psycopg
from alembic.script import ScriptDirectory
from click.testing import CliRunner

from billing_sync.cli import main
from billing_sync.config.settings import get_settings
from billing_sync.models.migrate import alembic_config

from throwaway import migrated_database


def db_wait(monkeypatch, url: str, timeout: str):
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, ["db", "wait", "--timeout", timeout])
    finally:
        get_settings.cache_clear()


def test_waits_for_the_schema_to_reach_head(monkeypatch, pg_url):
    with migrated_database("bs_dbwait") as url:
        assert db_wait(monkeypatch, url, "5").exit_code == 0
        first = ScriptDirectory.from_config(alembic_config(url)).get_base()
        with psycopg.connect(url, autocommit=True) as conn:  # as if this image were newer than the schema
            conn.execute("UPDATE alembic_version SET version_num = %s", (first,))
        behind = db_wait(monkeypatch, url, "0.5")
        assert behind.exit_code == 1
        assert "database still behind head after 0.5 s" in behind.output


def test_an_unreachable_database_times_out_with_exit_code_1(monkeypatch):
    result = db_wait(monkeypatch, "postgresql://postgres@127.0.0.1:1/none", "0.2")
    assert result.exit_code == 1
    assert "database still unreachable (OperationalError)" in result.output
