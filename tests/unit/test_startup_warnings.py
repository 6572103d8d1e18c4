"""Each role says at start-up, once, what an operator must know about its configuration
(ops/startup_warnings.py): one WARNING JSON line per finding."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from billing_sync.cli import main
from billing_sync.config.settings import Settings, get_settings
from billing_sync.ops.startup_warnings import findings

PERSISTENT = {"appendonly": "yes", "save": ""}
FORGETFUL = {"appendonly": "no", "save": ""}


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def events(role: str, config: Settings, redis: dict | None = None) -> dict[str, dict]:
    def redis_config(url: str) -> dict[str, str]:
        if redis is None:
            raise ConnectionError("down")
        return redis

    return dict(findings(role, config, redis_config))


def test_embedded_defaults_are_named():
    found = events("worker", settings())
    assert found["startup.embedded_defaults"]["settings"] == [
        "BILLING_DATABASE_URL", "BILLING_BROKER_URL", "BILLING_STRIPE_API_KEY", "BILLING_WEBHOOK_SECRETS",
        "BILLING_API_TOKENS"]
    assert set(found) == {"startup.embedded_defaults"}  # the embedded broker: one process, one limiter


def test_a_fleet_configured_in_full_hears_nothing():
    fleet = settings(database_url="postgresql://u@db/billing", broker_url="redis://r:6379/0",
                     stripe_api_key="sk_test_real", webhook_secrets="whsec_real", api_tokens="tok")
    assert events("worker", fleet, PERSISTENT) == {}


def test_rabbitmq_without_redis_has_a_local_only_rate_limit():
    rabbit = settings(broker_url="amqp://guest:guest@mq:5672/%2F")
    assert "startup.rate_limit_local_only" in events("worker", rabbit)
    with_redis = settings(broker_url="amqp://guest:guest@mq:5672/%2F", redis_url="redis://r:6379/0")
    assert "startup.rate_limit_local_only" not in events("worker", with_redis, PERSISTENT)


@pytest.mark.parametrize("redis, warned", [(FORGETFUL, True), (PERSISTENT, False), ({"appendonly": "no",
                         "save": "3600 1 300 100"}, False), (None, False)])
def test_a_redis_without_aof_or_snapshots_is_reported(redis, warned):
    found = events("bridge", settings(broker_url="redis://:secret@r:6379/0"), redis)
    assert ("startup.redis_not_persistent" in found) is warned
    if warned:
        assert "secret" not in json.dumps(found["startup.redis_not_persistent"])


@pytest.mark.parametrize("role, runner", [("relay", "billing_sync.workers.relay.run_relay"),
                                          ("bridge", "billing_sync.workers.bridge.run_bridge"),
                                          ("scheduler", "billing_sync.workers.scheduler.run_scheduler"),
                                          ("ingress", "billing_sync.ingress.server.serve"),
                                          ("worker", "billing_sync.workers.worker.run_worker")])
def test_every_role_warns_once_at_start_up_as_one_json_line(monkeypatch, tmp_path, role, runner):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BILLING_LOG_FORMAT", "json")
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite:///{tmp_path}/billing.db")
    monkeypatch.setattr(runner, lambda *args, **kwargs: 0)  # the role's loop: not run here
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, [role])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    warned = [line for line in lines if line["event"] == "startup.embedded_defaults"]
    assert len(warned) == 1 and warned[0]["level"] == "warning" and warned[0]["role"] == role
    assert "BILLING_BROKER_URL" in warned[0]["settings"]
