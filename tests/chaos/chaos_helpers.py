"""Small helpers shared by the chaos tests: Stripe-side changes, signed deliveries, checks on the
database and on the roles' JSON logs."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg

from billing_sync_emulator.webhooks import sign

from contexts import wait_until  # noqa: F401  (the chaos tests import it from here)
from services import PG_ADMIN_URL

SECRET = "whsec_chaos_secret"
TOKEN = "chaos-token"
PG_HOST = urlsplit(PG_ADMIN_URL).hostname or "127.0.0.1"
PG_PORT = urlsplit(PG_ADMIN_URL).port or 5432


def via_proxy(url: str, port: int) -> str:
    """The same database URL, but through a proxy listening on 127.0.0.1:`port`."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=f"{user}127.0.0.1:{port}").geturl()


def stripe_event_for(emulator, type_: str, object_id: str) -> dict:
    """The newest event of `type_` about `object_id`, as the emulator would deliver it."""
    found = [e for e in emulator.events(type_) if e["data"]["object"].get("id") == object_id]
    assert found, f"no {type_} event for {object_id}"
    return found[-1]


def post_webhook(ingress_url: str, event: dict, secret: str) -> httpx.Response:
    """One signed delivery of `event`, exactly as Stripe (and the emulator) would send it."""
    payload = json.dumps({**event, "pending_webhooks": 1}, indent=2)
    return httpx.post(f"{ingress_url}/webhooks/stripe", content=payload.encode(), timeout=15,
                      headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload, secret)})


def entitlement_changes(events, tenant: str) -> list[dict]:
    """The tenant's billing.entitlements.changed events as a consumer sees them: deduplicated by
    CloudEvents `id` (the relay delivers at least once: a cut between its publish and its commit
    publishes the row again, with the same id). A redelivery must be identical to the original."""
    by_id: dict[str, dict] = {}
    for event in events.events:
        if event["type"] != "billing.entitlements.changed" or event["data"].get("tenant_id") != tenant:
            continue
        first = by_id.setdefault(event["id"], event)
        assert first["data"] == event["data"], f"two different events share the id {event['id']}"
    return list(by_id.values())


def query(database_url: str, sql: str, *params) -> list[tuple]:
    """Read (or write) the fleet's database directly (not through any proxy a test may have cut)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def log_records(path: Path) -> list[dict]:
    """The JSON lines of one role's log (Dramatiq's own plain lines are skipped)."""
    records = []
    for line in Path(path).read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return records


def processed_outcomes(fleet, event_id: str) -> list[str]:
    """Every time a worker ran `process_stripe_event` for `event_id`, its outcome."""
    return [r.get("outcome") for r in log_records(fleet.tmp / "worker.log")
            if r.get("event") == "actor.processed" and r.get("event_id") == event_id]
