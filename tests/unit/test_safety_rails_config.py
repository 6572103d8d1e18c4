"""Configuration rails: a live Stripe key never runs with the public default secrets, and a bad
setting is one line with exit code 2, never a traceback."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from billing_sync.cli import main
from billing_sync.config.settings import Settings, get_settings


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize("key", ["sk_live_abc", "rk_live_abc"])
@pytest.mark.parametrize("secrets, tokens, named", [
    ({}, {}, ["BILLING_WEBHOOK_SECRETS", "BILLING_API_TOKENS"]),
    ({"webhook_secrets": "whsec_real"}, {}, ["BILLING_API_TOKENS"]),
    ({}, {"api_tokens": "a-long-random-token"}, ["BILLING_WEBHOOK_SECRETS"]),
    ({"webhook_secrets": "whsec_new,whsec_emulator"}, {"api_tokens": "tok"}, ["BILLING_WEBHOOK_SECRETS"]),
    ({}, {"api_tokens": "tok,dev-token"}, ["BILLING_WEBHOOK_SECRETS", "BILLING_API_TOKENS"]),
])
def test_a_live_key_refuses_the_default_secrets(key, secrets, tokens, named):
    with pytest.raises(ValidationError) as caught:
        settings(stripe_api_key=key, **secrets, **tokens)
    message = str(caught.value)
    for name in named:
        assert name in message
    assert "whsec_emulator" not in message or "BILLING_WEBHOOK_SECRETS" in named


@pytest.mark.parametrize("key", ["sk_test_emulator", "sk_test_123", "rk_test_123"])
def test_the_defaults_still_work_with_test_keys_and_the_emulator(key):
    assert settings(stripe_api_key=key).api_tokens[0].get_secret_value() == "dev-token"


def test_a_live_key_with_secrets_of_its_own_is_accepted():
    s = settings(stripe_api_key="sk_live_abc", webhook_secrets="whsec_real", api_tokens="tok1,tok2")
    assert s.live_mode


@pytest.fixture
def cli_env(monkeypatch):
    def invoke(args: list[str], **env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(main, args)
        finally:
            get_settings.cache_clear()

    monkeypatch.chdir("/")  # no .env of the developer's
    return invoke


@pytest.mark.parametrize("env, words", [
    ({"BILLING_STRIPE_API_KEY": "sk_live_abc"}, ["live key", "BILLING_WEBHOOK_SECRETS", "BILLING_API_TOKENS"]),
    ({"BILLING_STRIPE_API_KEY": "rk_live_abc", "BILLING_WEBHOOK_SECRETS": "whsec_x"}, ["BILLING_API_TOKENS"]),
    ({"BILLING_SWEEP_INTERVAL_S": "ten"}, ["BILLING_SWEEP_INTERVAL_S", "integer"]),
    ({"BILLING_BROWSER_TOKEN_SECRET": "short-secret-31-bytes-long-xxxx"}, ["BILLING_BROWSER_TOKEN_SECRET", "32 bytes"]),
])
@pytest.mark.parametrize("role", [["worker"], ["ingress"], ["bridge"], ["relay"], ["scheduler"], ["up"], ["status"]])
def test_a_configuration_error_is_one_line_and_exit_2_for_every_role(cli_env, env, words, role):
    result = cli_env(role, **env)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("billing-sync: configuration error:")
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in result.output
    assert "short-secret" not in result.output  # a secret is named, never shown


@pytest.mark.parametrize("secret, accepted", [
    ("x" * 31, False), ("é" * 16, True), ("x" * 32, True), ("", True),  # bytes, not characters; empty = unset
])
def test_an_explicit_browser_token_secret_needs_32_bytes(secret, accepted):
    if accepted:
        assert settings(browser_token_secret=secret).browser_token_secret is not None
    else:
        with pytest.raises(ValidationError, match="at least 32 bytes"):
            settings(browser_token_secret=secret)


@pytest.fixture
def bad_catalogs(tmp_path):
    (tmp_path / "broken.yaml").write_text("plans: [unclosed\n")
    (tmp_path / "invalid.yaml").write_text("free_plan: free\nplans: {pro: {name: 3}}\n")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    return tmp_path


@pytest.mark.parametrize("catalog, words", [
    ("missing.yaml", ["BILLING_CATALOG=", "missing.yaml", "cannot read"]),
    ("broken.yaml", ["BILLING_CATALOG=", "not a YAML file"]),
    ("binary.yaml", ["BILLING_CATALOG=", "not a YAML file"]),
    ("invalid.yaml", ["BILLING_CATALOG=", "problem"]),
])
def test_a_bad_catalog_is_one_line_and_exit_2(cli_env, bad_catalogs, catalog, words):
    result = cli_env(["reconcile", "--dry-run"], BILLING_CATALOG=str(bad_catalogs / catalog),
                     BILLING_DATABASE_URL=f"sqlite:///{bad_catalogs}/billing.db")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("billing-sync: configuration error:"), result.output
    for word in words:
        assert word in lines[0]
