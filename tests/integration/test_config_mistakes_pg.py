"""A database that does not exist on a PostgreSQL that does (the usual forgotten `createdb`): a
configuration error in one line, exit 2, for a role and for `db upgrade`; a server that refuses
connections is an outage, exit 1."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from billing_sync.cli import main
from billing_sync.config.settings import get_settings


@pytest.fixture
def cli(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    def invoke(args: list[str], database_url: str):
        monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(main, args)
        finally:
            get_settings.cache_clear()

    return invoke


@pytest.mark.parametrize("args", [["db", "upgrade"], ["db", "current"], ["account", "show"]])
def test_a_database_that_does_not_exist_is_one_line_and_exit_2(cli, pg_url, args):
    absent = make_url(pg_url).set(database="billing_sync_never_created").render_as_string(hide_password=False)
    result = cli(args, absent)
    assert result.exit_code == 2, (result.output, result.exception)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("billing-sync: configuration error: BILLING_DATABASE_URL=")
    assert "billing_sync_never_created" in line and "does not exist" in line and "db upgrade" in line


def test_a_database_server_that_is_down_is_one_line_and_exit_1(cli, pg_url):
    down = make_url(pg_url).set(host="127.0.0.1", port=1).render_as_string(hide_password=False)
    result = cli(["db", "current"], down)
    assert result.exit_code == 1, (result.output, result.exception)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("billing-sync: unavailable: BILLING_DATABASE_URL=")
