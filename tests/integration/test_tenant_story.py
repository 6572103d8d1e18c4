"""A tenant's story on PostgreSQL with the Stripe emulator as Stripe (issue 11): `tenant show`,
`tenant explain` (with its live read), `events replay`, `dlq list/show/purge` run as the
`billing-sync` command, and the admin endpoints through Starlette's TestClient. Commands and
events are handed to the handlers as the workers would (the whole fleet: tests/e2e)."""
from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.testclient import TestClient

from billing_sync.bms.gateway import StripeGateway
from billing_sync.cli import main
from billing_sync.client import command_envelope
from billing_sync.config.settings import get_settings
from billing_sync.handlers.command_dispatch import handle_command
from billing_sync.ingress import admin_api
from billing_sync.models import utcnow

from contexts import event_received, make_bus

KEY = "sk_test_story"
ADMIN = "admin-secret-1"
SERVICE = "svc-token-1"


class Story:
    def __init__(self, emulator, pg_url, pg_engine, make_settings, monkeypatch):
        self.emulator = emulator
        self.env = {"BILLING_DATABASE_URL": pg_url, "BILLING_STRIPE_API_BASE": emulator.url,
                    "BILLING_STRIPE_API_KEY": KEY, "BILLING_BROKER_URL": "embedded", "BILLING_LOG_LEVEL": "ERROR",
                    "BILLING_LOG_FORMAT": "json", "BILLING_API_TOKENS": SERVICE, "BILLING_ADMIN_TOKENS": ADMIN}
        self.monkeypatch = monkeypatch
        settings = make_settings(database_url=pg_url, stripe_api_base=emulator.url, stripe_api_key=KEY,
                                 api_tokens=SERVICE, admin_tokens=ADMIN)
        self.gateway = StripeGateway(KEY, api_base=emulator.url)
        self.bus = make_bus(settings, pg_engine, self.gateway, utcnow)
        self.delivered: set[str] = set()
        self.api = TestClient(Starlette(routes=admin_api.routes(self.bus)))

    def cli(self, *args: str, input: str | None = None):
        self.monkeypatch.chdir("/")  # no developer .env
        for name, value in self.env.items():
            self.monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(main, list(args), input=input)
        finally:
            get_settings.cache_clear()

    def cli_json(self, *args: str, code: int = 0) -> dict:
        result = self.cli(*args, "--json")
        assert result.exit_code == code, (result.stdout, result.stderr)
        return json.loads(result.stdout)  # exactly one document on stdout

    def command(self, type_: str, tenant: str, data: dict) -> dict:
        envelope = command_envelope(type_, tenant, data)
        with self.bus.uow_factory() as uow:  # as the bridge records it
            uow.inbox.record(envelope["id"], tenant, envelope["type"], json.dumps(envelope))
            uow.commit()
        assert self.bus.call(handle_command, envelope) == "completed"
        return envelope

    def deliver(self, keep: set[str] = frozenset()) -> None:
        """Hand every event the emulator made to the handlers, except those in `keep` (webhooks lost)."""
        for event in self.emulator.events():
            if event["id"] in self.delivered or event["id"] in keep:
                continue
            self.delivered.add(event["id"])
            self.bus.handle(event_received(self.bus, event, utcnow()))

    def provisioned(self, seats: int = 2) -> tuple[str, dict]:
        tenant = f"story-{uuid.uuid4().hex[:8]}"
        envelope = self.command("billing.tenant.provisioned", tenant,
                                {"name": "Acme", "email": f"{tenant}@example.test", "plan": "pro", "seats": seats,
                                 "payment_method": "pm_card_visa"})
        self.deliver()
        return tenant, envelope


@pytest.fixture
def story(emulator, pg_url, pg_engine, make_settings, monkeypatch):
    return Story(emulator, pg_url, pg_engine, make_settings, monkeypatch)


def test_tenant_show_tells_events_commands_outcomes_versions_and_dead_letters_in_time_order(story):
    tenant, envelope = story.provisioned()
    with story.bus.uow_factory() as uow:
        uow.dead_letters.add(source="apply_command", message_id="cmd-lost", reason="bms_unavailable", detail="down",
                             body=json.dumps({"args": [{"subject": tenant, "data": {"tenant_id": tenant}}]}))
        uow.dead_letters.add(source="apply_command", message_id="cmd-other", reason="invalid", detail=None,
                             body=json.dumps({"args": [{"data": {"tenant_id": "someone-else"}}]}))
        uow.commit()

    document = story.cli_json("tenant", "show", tenant)
    entries = document["entries"]
    assert document["found"] and document["stripe_customer_id"].startswith("cus_")
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    kinds = {e["kind"] for e in entries}
    assert kinds == {"command", "outcome", "stripe_event", "entitlements", "dead_letter"}
    [received] = [e for e in entries if e["kind"] == "command"]
    [outcome] = [e for e in entries if e["kind"] == "outcome"]
    assert received["id"] == outcome["id"] == envelope["id"] and received["at"] < outcome["at"]
    assert outcome["data"]["outcome"] == "completed" and outcome["data"]["event"]["stripe_customer_id"]
    versions = [e["data"] for e in entries if e["kind"] == "entitlements"]
    assert versions[-1]["plan"] == "pro" and versions[-1]["limits"]["seats"] == 2
    assert all(v["cause"] for v in versions)
    assert [e["data"]["message_id"] for e in entries if e["kind"] == "dead_letter"] == ["cmd-lost"]
    assert any(e["kind"] == "stripe_event" and e["data"]["type"].startswith("customer.subscription.")
               for e in entries)

    human = story.cli("tenant", "show", tenant)
    assert human.exit_code == 0 and "AT (UTC)" in human.stdout and envelope["id"] in human.stdout
    assert story.cli_json("tenant", "show", tenant, "--limit", "2")["entries"] == entries[-2:]
    assert story.cli_json("tenant", "show", "nobody-here", code=1)["entries"] == []
    refused = story.cli("tenant", "show", "bad/id")
    assert refused.exit_code == 2 and refused.stderr.startswith("billing-sync: configuration error")


def test_the_admin_endpoint_takes_only_admin_tokens(story):
    tenant, _ = story.provisioned()
    path = f"/v1/admin/tenants/{tenant}/timeline"
    for headers in ({}, {"Authorization": f"Bearer {SERVICE}"}, {"Authorization": "Bearer nope"}):
        assert story.api.get(path, headers=headers).status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN}"}
    answer = story.api.get(path, headers=admin)
    assert answer.status_code == 200 and answer.json()["entries"]
    assert answer.json() == story.cli_json("tenant", "show", tenant)
    assert story.api.get(path + "?limit=0", headers=admin).json()["param"] == "limit"
    assert story.api.get(path + "?since=yesterday", headers=admin).json()["param"] == "since"
    assert story.api.get(path + "?color=red", headers=admin).status_code == 400
    assert len(story.api.get(path + "?limit=1", headers=admin).json()["entries"]) == 1
    assert story.api.get("/v1/admin/tenants/nobody/timeline", headers=admin).status_code == 404
    assert story.api.get("/v1/admin/tenants/b%00d/timeline", headers=admin).json()["error"] == "invalid_tenant_id"
    explained = story.api.get(f"/v1/admin/tenants/{tenant}/explanation?live=1", headers=admin).json()
    assert explained["local"]["plan"] == explained["live"]["plan"] == "pro"


def test_explain_names_the_rules_and_the_live_read_shows_drift_that_events_replay_repairs(story):
    tenant, _ = story.provisioned(seats=2)
    document = story.cli_json("tenant", "explain", tenant)
    local, live = document["local"], document["live"]
    assert local["plan"] == "pro" and local["matches_snapshot"] and live["matches_local"]
    assert live["source"].startswith("Stripe, live read")
    seats = [r for r in local["reasons"] if r["part"] == "limit" and r["name"] == "seats"]
    assert [r["source"] for r in seats] == ["per_seat"]
    assert {r["source"] for r in local["reasons"] if r["part"] == "plan"} == {"price_lookup_key", "subscription"}

    # Support staff add seats in Stripe; the webhook never arrives.
    [sub] = story.gateway.list_subscriptions(customer=document["stripe_customer_id"])
    before = {e["id"] for e in story.emulator.events()}
    story.gateway.update_subscription(sub["id"], {"items": [{"id": sub["items"]["data"][0]["id"], "quantity": 5}]},
                                      idempotency_key=f"{tenant}:staff")
    lost = {e["id"] for e in story.emulator.events()} - before
    drift = story.cli_json("tenant", "explain", tenant, code=0)
    assert drift["local"]["limits"]["seats"] == 2 and drift["live"]["limits"]["seats"] == 5
    assert drift["live"]["matches_local"] is False
    human = story.cli("tenant", "explain", tenant)
    assert "LIVE READ FROM STRIPE" in human.stdout and "DIFFERS FROM local" in human.stdout
    assert story.cli_json("tenant", "explain", tenant, "--no-live")["live"] is None

    [updated] = [e["id"] for e in story.emulator.events() if e["id"] in lost
                 and e["type"] == "customer.subscription.updated"]
    replayed = story.cli_json("events", "replay", updated)
    assert (replayed["sent"], replayed["outcome"]) == (True, "applied")
    assert replayed["type"] == "customer.subscription.updated"
    assert story.cli_json("tenant", "explain", tenant)["local"]["limits"]["seats"] == 5
    again = story.cli_json("events", "replay", updated)
    assert (again["sent"], again["outcome"], again["ledger"]["outcome"]) == (False, "duplicate", "applied")
    assert story.cli_json("events", "replay", "evt_doesnotexist", code=1)["found"] is False
    assert story.cli("events", "replay", "not-an-event").exit_code == 2


def test_dlq_list_filters_show_and_purge_all_asks_first(story):
    with story.bus.uow_factory() as uow:
        first = uow.dead_letters.add(source="bridge", message_id=None, body="\x01not json", reason="invalid",
                                     detail="not JSON")
        uow.dead_letters.add(source="apply_command", message_id="cmd-1", reason="bms_unavailable", detail="down",
                             body=json.dumps({"args": [{"id": "cmd-1"}], "kwargs": {}}))
        uow.commit()
        first_id = first.id
    listed = story.cli_json("dlq", "list")["dead_letters"]
    assert [row["source"] for row in listed] == ["apply_command", "bridge"]
    assert [r["id"] for r in story.cli_json("dlq", "list", "--source", "bridge")["dead_letters"]] == [first_id]
    assert [r["message_id"] for r in story.cli_json("dlq", "list", "--reason", "bms_unavailable")["dead_letters"]] \
        == ["cmd-1"]
    assert story.cli_json("dlq", "list", "--since", "2099-01-01")["dead_letters"] == []
    assert len(story.cli_json("dlq", "list", "--since", "1h")["dead_letters"]) == 2
    assert story.cli("dlq", "list", "--since", "soon").exit_code == 2
    human = story.cli("dlq", "list")
    assert "FAILED AT (UTC)" in human.stdout and "cmd-1" in human.stdout

    shown = story.cli_json("dlq", "show", str(first_id))
    assert (shown["reason"], shown["body"]) == ("invalid", "\x01not json")
    assert story.cli_json("dlq", "show", str(listed[0]["id"]))["body"] == {"args": [{"id": "cmd-1"}], "kwargs": {}}
    assert story.cli_json("dlq", "show", "999999", code=1)["error"] == "no such dead letter"

    declined = story.cli("dlq", "purge", "--all", input="n\n")
    assert declined.exit_code == 3 and "not confirmed" in declined.stderr
    assert "Delete all 2 dead letter(s), 2 of them never replayed?" in declined.stderr
    assert story.cli("dlq", "purge", "--all").exit_code == 3  # no answer (no terminal): refused too
    assert len(story.cli_json("dlq", "list")["dead_letters"]) == 2
    assert story.cli("dlq", "purge", "--all", input="y\n").exit_code == 0
    assert story.cli_json("dlq", "list")["dead_letters"] == []
    with story.bus.uow_factory() as uow:
        uow.dead_letters.add(source="bridge", message_id=None, body="x", reason="invalid", detail=None)
        uow.commit()
    assert story.cli("dlq", "purge", "--all", "--yes").exit_code == 0
    assert story.cli_json("dlq", "list")["dead_letters"] == []
