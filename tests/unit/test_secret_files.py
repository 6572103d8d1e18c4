"""BILLING_X_FILE (config/secret_files.py): any setting from a file, as Docker and Kubernetes
hand over secrets; both forms at once, or a file that cannot be read, is a configuration error
that the CLI prints as one line with exit code 2."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from billing_sync.cli import main
from billing_sync.config.settings import Settings
from billing_sync.errors import ConfigurationError


@pytest.fixture(autouse=True)
def no_billing_environment(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("BILLING_"):
            monkeypatch.delenv(name)


def test_a_setting_is_read_from_its_file_without_the_trailing_newline(monkeypatch, tmp_path):
    (tmp_path / "key").write_text("sk_test_from_a_file\n")
    (tmp_path / "tokens").write_text("one,two\n")
    monkeypatch.setenv("BILLING_STRIPE_API_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("BILLING_API_TOKENS_FILE", str(tmp_path / "tokens"))
    settings = Settings(_env_file=None)
    assert settings.stripe_api_key.get_secret_value() == "sk_test_from_a_file"
    assert [t.get_secret_value() for t in settings.api_tokens] == ["one", "two"]


def test_an_empty_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv("BILLING_STRIPE_API_KEY_FILE", "")
    monkeypatch.setenv("BILLING_STRIPE_API_BASE", "")  # a compose file clearing the emulator's address
    settings = Settings(_env_file=None)
    assert settings.stripe_api_base is None
    assert settings.stripe_api_key.get_secret_value() == "sk_test_emulator"


def test_both_the_value_and_its_file_is_an_error(monkeypatch, tmp_path):
    (tmp_path / "key").write_text("sk_test_a")
    monkeypatch.setenv("BILLING_STRIPE_API_KEY", "sk_test_b")
    monkeypatch.setenv("BILLING_STRIPE_API_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(ConfigurationError, match="BILLING_STRIPE_API_KEY and BILLING_STRIPE_API_KEY_FILE"):
        Settings(_env_file=None)


def test_an_unreadable_file_is_one_line_and_exit_code_2(monkeypatch, tmp_path):
    from billing_sync.config.settings import get_settings

    monkeypatch.setenv("BILLING_WEBHOOK_SECRETS_FILE", str(tmp_path / "missing"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["status"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"billing-sync: configuration error: BILLING_WEBHOOK_SECRETS_FILE: cannot read "
                     f"{tmp_path / 'missing'} (No such file or directory)"]
