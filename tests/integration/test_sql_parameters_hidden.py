"""SQL parameters (e-mail addresses, names, payloads) never reach an error message, and so never a
log line or a dead letter's detail: every engine is made with hide_parameters=True."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from billing_sync.models import make_engine


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_failed_statement_does_not_show_its_parameters(database, sqlite_url, pg_url):
    engine = make_engine(sqlite_url if database == "sqlite" else pg_url)
    try:
        with pytest.raises(DBAPIError) as failure, engine.connect() as conn:
            conn.execute(text("INSERT INTO no_such_table (email) VALUES (:email)"), {"email": "ada@example.com"})
    finally:
        engine.dispose()
    assert "ada@example.com" not in str(failure.value)
    assert "parameters hidden" in str(failure.value)
