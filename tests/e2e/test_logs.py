"""Issue 7 (logs), end to end: every role as a real process in JSON mode (ingress, worker with two
Dramatiq processes, bridge, relay, scheduler) on real PostgreSQL and Redis. Traffic with an
e-mail address, a transient Stripe failure, a malformed HTTP request and a badly signed webhook;
then every line of every process's output must be one JSON object, the retry one WARNING line
with its reason, and no e-mail address, secret or body fragment anywhere."""
from __future__ import annotations

import json
import socket
import time
import uuid

import httpx
import pytest

from billing_sync.client import publish_command

from contexts import wait_until
from e2e_fleet import start_fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, pg_url, redis_url):
    """This module's own fleet: Redis only, the scheduler too, and two worker processes.

    Its own Redis database (11): commands other test runs publish on the shared database, poison
    ones included, must not reach this fleet's bridge and its log."""
    prefix = f"e2e-logs-{uuid.uuid4().hex[:6]}"
    own_redis_url = redis_url.rsplit("/", 1)[0] + "/11"
    fleet = start_fleet(tmp_path_factory, own_redis_url, pg_url, prefix,
                        roles=("ingress", "bridge", "relay", "scheduler"),
                        BILLING_CATCH_UP_INTERVAL_S="1", BILLING_SWEEP_INTERVAL_S="2")
    fleet.start("worker", "--processes", "2", "--threads", "2")
    yield fleet
    fleet.close()
    fleet.emulator.stop()


def _send(fleet, type: str, tenant: str, data: dict) -> str:
    return publish_command(fleet.env["BILLING_BROKER_URL"], type, tenant, {"tenant_id": tenant, **data},
                           queue_prefix=fleet.env["BILLING_QUEUE_PREFIX"])


def _outcome(events, command_id: str, timeout: float = 30) -> dict:
    return events.wait_for(lambda e: e["type"].startswith("billing.command.")
                           and e["data"].get("command_id") == command_id, timeout=timeout)


def _retry_logged(fleet, message_type: str) -> bool:
    return any('"message.retrying"' in line and f'"message_type": "{message_type}"' in line
               for line in (fleet.tmp / "worker.log").read_text(errors="replace").splitlines())


def _lines(fleet) -> dict[str, list[str]]:
    return {path.stem: path.read_text(errors="replace").splitlines() for path in fleet.tmp.glob("*.log")}


def test_every_line_of_every_role_is_one_scrubbed_json_object(fleet, events):
    tenant = fleet.new_tenant("logs")
    marker = uuid.uuid4().hex[:10]
    email, name = f"ada.{marker}@example.test", f"Ada-{marker}"

    done = _outcome(events, _send(fleet, "billing.tenant.provisioned", tenant,
                                  {"name": name, "email": email, "plan": "starter", "payment_method": "pm_card_visa"}))
    assert done["type"] == "billing.command.completed", done

    # A transient failure: Stripe answers 500 to everything until the command has failed once.
    fleet.emulator.faults.error_ratio = 1.0
    try:
        update = _send(fleet, "billing.tenant.updated", tenant, {"name": f"{name}-2", "email": f"b.{email}"})
        wait_until(lambda: _retry_logged(fleet, "billing.tenant.updated"), timeout=20)
    finally:
        fleet.emulator.faults.error_ratio = 0.0
    assert _outcome(events, update)["type"] == "billing.command.completed"

    # Hostile input for uvicorn (a malformed request line) and for the ingress (a bad signature).
    with socket.create_connection(("127.0.0.1", fleet.port)) as sock:
        sock.sendall(b"GARBAGE \x00\x01 nonsense\r\n\r\n")
        sock.recv(1024)
    body = json.dumps({"id": "evt_x", "object": "event", "data": {"object": {"email": email}}})
    rejected = httpx.post(f"{fleet.ingress_url}/webhooks/stripe", content=body,
                          headers={"Stripe-Signature": "t=1,v1=00"})
    assert rejected.status_code == 400
    # The read API too (404 while the tenant's first snapshot is still on its way: fine here).
    assert fleet.api.get(f"/v1/tenants/{tenant}/entitlements").status_code in (200, 404)
    fleet.emulator.wait_for_deliveries_idle()
    time.sleep(1.0)  # the last webhooks processed, a scheduler round done
    fleet.stop()  # graceful: the shutdown lines count too

    logs = _lines(fleet)
    assert {"ingress", "worker", "bridge", "relay", "scheduler"} <= set(logs)
    parsed: dict[str, list[dict]] = {}
    for role, lines in logs.items():
        assert lines, f"{role} logged nothing"
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                pytest.fail(f"{role}: not a JSON line: {line[:300]!r}")
            assert isinstance(record, dict) and {"event", "level", "timestamp"} <= set(record), (role, line)
        parsed[role] = [json.loads(line) for line in lines]

    # Both worker processes logged (each processes messages), in JSON, through the parent's output.
    assert any(r["event"] == "actor.processed" for r in parsed["worker"])
    # uvicorn's own logger came through the pipeline too.
    assert any(r.get("logger", "").startswith("uvicorn") for r in parsed["ingress"]), parsed["ingress"]

    retries = [r for r in parsed["worker"] if r["event"] == "message.retrying"]
    assert retries, "the transient failure was not logged"
    for retry in retries:
        assert retry["level"] == "warning" and retry["reason"] and "exception" not in retry, retry
    assert any(r.get("message_type") == "billing.tenant.updated" for r in retries), retries
    problems = [(role, r) for role, records in parsed.items() for r in records
                if r["level"] in ("error", "critical") or "exception" in r]
    assert problems == []  # nothing in this traffic is a bug

    everything = "\n".join("\n".join(lines) for lines in logs.values())
    secrets = [fleet.env["BILLING_STRIPE_API_KEY"], *fleet.env["BILLING_WEBHOOK_SECRETS"].split(","),
               *fleet.env["BILLING_API_TOKENS"].split(",")]
    for leak in (email, marker, *secrets, "Traceback"):
        assert leak not in everything, leak
