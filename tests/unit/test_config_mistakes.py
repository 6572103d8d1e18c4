"""The ten configuration mistakes operators make most (issue 11): each is one line on stderr naming
the setting (or option) and what is wrong, exit code 2, never a traceback, and nothing run.
The database that does not exist needs a PostgreSQL: tests/integration/test_config_mistakes_pg.py."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from billing_sync.cli import main
from billing_sync.config.settings import get_settings

ROLES = [["worker"], ["ingress"], ["bridge"], ["relay"], ["scheduler"], ["up"]]


@pytest.fixture
def cli(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name in ("BILLING_DATABASE_URL", "BILLING_CATALOG", "BILLING_BROKER_URL", "BILLING_STRIPE_API_KEY",
                 "BILLING_LOG_LEVEL", "BILLING_LOG_FORMAT", "BILLING_SWEEP_INTERVAL_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite:///{tmp_path}/billing.db")
    (tmp_path / "invalid.yaml").write_text("free_plan: free\nplans: {pro: {name: 3}}\n")

    def invoke(args: list[str], **env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value.replace("{tmp}", str(tmp_path)))
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(main, args)
        finally:
            get_settings.cache_clear()

    return invoke


def one_line_exit_2(result, *words: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.stdout == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


MISTAKES = {
    "missing catalog": ({"BILLING_CATALOG": "{tmp}/nowhere.yaml"}, ["BILLING_CATALOG=", "cannot read"]),
    "invalid catalog": ({"BILLING_CATALOG": "{tmp}/invalid.yaml"}, ["BILLING_CATALOG=", "default_plan", "problem(s)"]),
    "postgres:// scheme": ({"BILLING_DATABASE_URL": "postgres://u:pw@db/billing"},
                           ["BILLING_DATABASE_URL", "postgres://", "postgresql://"]),
    "non-integer setting": ({"BILLING_SWEEP_INTERVAL_S": "10m"}, ["BILLING_SWEEP_INTERVAL_S", "integer"]),
    "unknown broker scheme": ({"BILLING_BROKER_URL": "kafka://broker:9092"},
                              ["BILLING_BROKER_URL", "'kafka'", "redis://", "amqp://"]),
    "wrong Stripe key": ({"BILLING_STRIPE_API_KEY": "pk_test_51abc"},
                         ["BILLING_STRIPE_API_KEY", "publishable key", "sk_test_"]),
    "unknown log level": ({"BILLING_LOG_LEVEL": "LOUD"}, ["BILLING_LOG_LEVEL", "'LOUD'", "WARNING"]),
    "log format xml": ({"BILLING_LOG_FORMAT": "xml"}, ["BILLING_LOG_FORMAT", "json", "console"]),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_a_configuration_mistake_is_one_line_and_exit_2(cli, mistake):
    env, words = MISTAKES[mistake]
    line = one_line_exit_2(cli(["reconcile", "--dry-run"], **env), *words)
    assert line.startswith("billing-sync: configuration error:")
    assert "pw" not in line  # a URL's password is never repeated


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role[0])
@pytest.mark.parametrize("mistake", ["postgres:// scheme", "unknown broker scheme", "wrong Stripe key",
                                     "unknown log level", "log format xml"])
def test_every_role_refuses_a_bad_setting_before_it_starts(cli, role, mistake):
    env, words = MISTAKES[mistake]
    one_line_exit_2(cli(role, **env), *words)


def test_a_negative_limit_is_one_line_and_exit_2(cli):
    one_line_exit_2(cli(["dlq", "list", "--limit", "-1"]), "dlq list", "--limit", "-1", "-h")


def test_a_mistyped_command_or_option_is_one_line_and_exit_2(cli):
    one_line_exit_2(cli(["reconcil"]), "No such command")
    one_line_exit_2(cli(["reconcile", "--dryrun"]), "--dryrun")


def test_a_key_stripe_refuses_is_a_configuration_error():
    import stripe

    from billing_sync.cli.errors import one_line
    from billing_sync.errors import PermanentError

    refused = stripe.AuthenticationError("Invalid API Key provided: sk_test_****", http_status=401)
    wrapped = PermanentError("Invalid API Key provided", reason="invalid")
    wrapped.__cause__ = refused  # as the gateway raises it
    found = one_line(wrapped)
    assert found is not None and found.exit_code == 2
    assert "BILLING_STRIPE_API_KEY" in found.format_message() and "sk_test" not in found.format_message()


def test_an_outage_at_start_up_is_one_line_and_exit_1():
    import redis

    from billing_sync.cli.errors import one_line

    found = one_line(redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."))
    assert found is not None and found.exit_code == 1 and found.format_message().startswith("unavailable:")


def test_a_bug_keeps_its_traceback():
    from billing_sync.cli.errors import one_line

    assert one_line(KeyError("x")) is None
