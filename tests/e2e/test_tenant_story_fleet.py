"""Issue 11 on the real processes: `billing-sync send` publishes a command on billing.commands as
a product would and prints its outcome; the tenant's timeline is then served by the real ingress's
admin endpoint (admin token only) and by `tenant show`; `tenant explain` reads Stripe live."""
from __future__ import annotations

import json
import uuid

import httpx
import pytest
from click.testing import CliRunner

from billing_sync.cli import main
from billing_sync.config.settings import get_settings

from contexts import wait_until
from e2e_fleet import TOKEN, start_fleet

ADMIN = "e2e-admin-token"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, pg_url, redis_url):
    """One fleet on Redis (the command path on RabbitMQ is test_command_path's)."""
    fleet = start_fleet(tmp_path_factory, redis_url, pg_url, f"e2e-story-{uuid.uuid4().hex[:6]}",
                        BILLING_ADMIN_TOKENS=ADMIN)
    yield fleet
    fleet.close()
    fleet.emulator.stop()


@pytest.fixture
def cli(fleet, monkeypatch):
    monkeypatch.chdir("/")  # no developer .env

    def invoke(*args: str, code: int | None = 0):
        for name, value in fleet.env.items():
            if name.startswith("BILLING_"):
                monkeypatch.setenv(name, value)
        monkeypatch.setenv("BILLING_LOG_LEVEL", "WARNING")
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(main, list(args))
        finally:
            get_settings.cache_clear()
        if code is not None:
            assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    return invoke


def test_send_prints_the_outcome_and_the_story_is_told_by_the_ingress_and_the_cli(fleet, cli):
    tenant = fleet.new_tenant("story")
    data = {"name": "Acme", "email": f"{tenant}@example.test", "plan": "starter", "payment_method": "pm_card_visa"}
    sent = json.loads(cli("send", "tenant.provisioned", tenant, json.dumps(data), "--json").stdout)
    assert (sent["outcome"], sent["type"], sent["tenant_id"]) == ("completed", "billing.tenant.provisioned", tenant)
    assert sent["event"]["type"] == "billing.command.completed"
    assert sent["event"]["data"]["stripe_customer_id"].startswith("cus_")

    failed = cli("send", "subscription.change", tenant, '{"plan": "platinum"}', "--json", code=1)
    assert (json.loads(failed.stdout)["outcome"], json.loads(failed.stdout)["reason"]) == ("failed", "unknown_plan")
    human = cli("send", "subscription.change", tenant, '{"seats": 3}')
    assert "completed" in human.stdout and "command_id" in human.stdout
    assert cli("send", "subscription.change", tenant, "{not json", code=2).stderr.startswith(
        "billing-sync: configuration error")
    assert "invalid command" in cli("send", "subscription.change", tenant, '{"seats": -1}', code=2).stderr

    def story() -> dict:
        return json.loads(cli("tenant", "show", tenant, "--json").stdout)

    timeline = wait_until(lambda: (s := story()) and any(
        e["kind"] == "entitlements" and e["data"]["limits"].get("seats") == 3 for e in s["entries"]) and s,
        timeout=20, what="the seats change in the timeline")
    kinds = [e["kind"] for e in timeline["entries"]]
    assert {"command", "outcome", "stripe_event", "entitlements"} <= set(kinds)
    outcomes = [e["id"] for e in timeline["entries"] if e["kind"] == "outcome"]
    assert len(outcomes) == 3 and outcomes[:2] == [sent["command_id"], json.loads(failed.stdout)["command_id"]]

    path = f"{fleet.ingress_url}/v1/admin/tenants/{tenant}/timeline"
    assert httpx.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
    served = httpx.get(path, headers={"Authorization": f"Bearer {ADMIN}"})
    assert served.status_code == 200 and served.json()["entries"] == story()["entries"]

    explained = json.loads(cli("tenant", "explain", tenant, "--json").stdout)
    assert explained["local"]["plan"] == explained["live"]["plan"] == "starter"
    assert explained["live"]["matches_local"] and explained["local"]["limits"]["seats"] == 3


def test_send_without_an_outcome_in_time_says_so_and_the_command_still_completes(fleet, cli):
    tenant = fleet.new_tenant("late")
    data = {"name": "Late", "email": f"{tenant}@example.test", "plan": "starter", "payment_method": "pm_card_visa"}
    with fleet.paused("worker"):
        late = json.loads(cli("send", "tenant.provisioned", tenant, json.dumps(data), "--timeout", "1", "--json",
                              code=1).stdout)
    assert late["outcome"] is None and "no outcome within 1 s" in late["detail"]
    wait_until(lambda: any(e["kind"] == "outcome" and e["id"] == late["command_id"]
                           for e in json.loads(cli("tenant", "show", tenant, "--json").stdout)["entries"]),
               timeout=30, what="the late command's outcome")
