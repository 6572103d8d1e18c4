"""The Stripe account pin on real PostgreSQL and the emulator: the first contact pins the account;
every role and `reconcile` (dry run included) refuses another account with one line and exit 3;
`billing-sync account repin --from OLD` moves the database on purpose."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from billing_sync.cli import main
from billing_sync.config.settings import get_settings
from billing_sync.handlers.account_pin import PIN
from billing_sync.models import SyncCursor, make_session_factory
from billing_sync_emulator.server import EmulatorServer


@pytest.fixture
def accounts():
    with EmulatorServer(account_id="acct_ours") as ours, EmulatorServer(account_id="acct_other") as other:
        yield ours, other


@pytest.fixture
def cli(pg_url, pg_engine, redis_url, monkeypatch, unique_prefix):
    monkeypatch.chdir("/")  # no developer .env

    def invoke(emulator: EmulatorServer, *args: str):
        for name, value in {"BILLING_DATABASE_URL": pg_url, "BILLING_STRIPE_API_BASE": emulator.url,
                            "BILLING_STRIPE_API_KEY": "sk_test_pin", "BILLING_BROKER_URL": redis_url,
                            "BILLING_QUEUE_PREFIX": unique_prefix, "BILLING_LOG_LEVEL": "ERROR"}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(main, list(args))
        finally:
            get_settings.cache_clear()

    return invoke


def pinned(engine) -> str | None:
    with make_session_factory(engine)() as session:
        row = session.get(SyncCursor, PIN)
        return row.value if row else None


def refused_line(result) -> str:
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("billing-sync: refused:") and "Traceback" not in result.output
    return lines[-1]


def test_first_contact_pins_and_a_dry_run_does_not(cli, accounts, pg_engine):
    ours, _ = accounts
    assert cli(ours, "reconcile", "--dry-run").exit_code == 0
    assert pinned(pg_engine) is None
    assert cli(ours, "reconcile").exit_code == 0
    assert pinned(pg_engine) == "acct_ours"


@pytest.mark.parametrize("args", [["reconcile", "--dry-run"], ["reconcile"], ["reconcile", "--tenant", "t1"],
                                  ["catalog", "sync"], ["scheduler"], ["worker"], ["account", "show"]])
def test_another_account_is_refused_with_how_to_proceed(cli, accounts, pg_engine, args):
    ours, other = accounts
    assert cli(ours, "reconcile").exit_code == 0
    result = cli(other, *args)
    if args == ["account", "show"]:
        assert result.exit_code == 3 and "acct_ours" in result.output and "acct_other" in result.output
        return
    line = refused_line(result)
    assert "acct_other" in line and "acct_ours" in line
    assert "billing-sync account repin --from acct_ours" in line
    assert pinned(pg_engine) == "acct_ours"


def test_repin_moves_the_database_on_purpose_only(cli, accounts, pg_engine):
    ours, other = accounts
    assert cli(ours, "reconcile").exit_code == 0
    wrong = cli(other, "account", "repin", "--from", "acct_typo")
    assert "not acct_typo" in refused_line(wrong) and pinned(pg_engine) == "acct_ours"
    moved = cli(other, "account", "repin", "--from", "acct_ours")
    assert moved.exit_code == 0, moved.output
    assert pinned(pg_engine) == "acct_other"
    assert cli(other, "reconcile", "--dry-run").exit_code == 0
    assert refused_line(cli(ours, "reconcile", "--dry-run"))
