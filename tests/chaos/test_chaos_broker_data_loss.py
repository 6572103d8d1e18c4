"""The Dramatiq broker loses its data mid-stream of commands: the fleet's private Redis (no
persistence) is killed while it holds a backlog of acked commands and restarted empty. The
bridge recorded every command in the database before it acked it, and the scheduler's inbox
repair sends the lost ones again, so every command published still ends in exactly one outcome
event. The event bus (billing.commands, billing.events) stays on the shared Redis, under this
module's own exchanges, so the product's side is not part of the outage."""
from __future__ import annotations

import threading
import time

import pytest

from billing_sync.client import CommandPublisher

from chaos_helpers import query, wait_until

pytestmark = pytest.mark.slow  # CI runs these; the quick run (-m "not slow") skips them

TENANTS = 6
COMMANDS = 240  # usage records, streamed over a few seconds
REPAIR_AFTER_S = 3


@pytest.fixture(scope="module")
def fleet(make_fleet, chaos_db, own_redis, shared_bus_url):
    return make_fleet(database_url=chaos_db, broker_url=own_redis.url, BILLING_EVENTS_URL=shared_bus_url,
                      roles=("worker", "bridge", "relay", "scheduler"), BILLING_MAX_RETRIES="20",
                      BILLING_COMMAND_REPAIR_AFTER_S=str(REPAIR_AFTER_S))


def outcomes(events) -> dict[str, list[dict]]:
    """command id → its distinct outcome events (deduplicated by CloudEvents id: the relay
    publishes at least once, and a redelivery is the same event)."""
    by_event: dict[str, dict] = {}
    for event in list(events.events):
        if event["type"] in ("billing.command.completed", "billing.command.failed"):
            by_event.setdefault(event["id"], event)
    found: dict[str, list[dict]] = {}
    for event in by_event.values():
        found.setdefault(event["data"]["command_id"], []).append(event)
    return found


@pytest.mark.timeout(300)
def test_every_command_survives_the_broker_losing_its_data(fleet, events, own_redis, shared_bus_url, chaos_db,
                                                           chaos_prefix):
    tenants = [fleet.new_tenant("loss") for _ in range(TENANTS)]
    with CommandPublisher(shared_bus_url, queue_prefix=chaos_prefix, source="chaos") as bus:
        provisioned = [bus.publish("billing.tenant.provisioned", t, {
            "name": t, "email": f"{t}@example.test", "plan": "pro", "payment_method": "pm_card_visa"})
            for t in tenants]
    wait_until(lambda: set(provisioned) <= set(outcomes(events)), 60, "every tenant provisioned")

    published: list[str] = []

    def stream() -> None:
        with CommandPublisher(shared_bus_url, queue_prefix=chaos_prefix, source="chaos") as bus:
            for i in range(COMMANDS):
                published.append(bus.publish("billing.usage.recorded", tenants[i % TENANTS], {
                    "meter": "api_calls", "quantity": 1, "timestamp": int(time.time())}))
                time.sleep(0.02)

    publisher = threading.Thread(target=stream, name="chaos-commands")
    publisher.start()
    wait_until(lambda: len(published) >= COMMANDS // 4, 30, "the stream under way")
    # A busy worker pool: the bridge keeps handing commands to Redis, which builds a backlog
    # there (acked by the bridge, so only Redis holds them) ...
    with fleet.paused("worker") as paused:
        # The role, Dramatiq's CLI and its worker process: Dramatiq runs in a process group of
        # its own, so stopping the role's group alone would leave the consumer running.
        assert len(paused) >= 3, paused
        wait_until(lambda: backlog(own_redis, chaos_prefix) >= COMMANDS // 5, 30, "a backlog in the broker")
        # ... and then Redis dies and comes back empty (no AOF, no RDB).
        own_redis.kill()
        time.sleep(1.0)
        own_redis.start()
    publisher.join(60)
    assert len(published) == COMMANDS

    everything = provisioned + published

    def without_outcome() -> list[str]:
        seen = outcomes(events)
        return [c for c in everything if c not in seen]

    deadline = time.monotonic() + 90
    while without_outcome() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(without_outcome()) == 0, f"{len(without_outcome())} of {len(everything)} commands have no outcome"
    time.sleep(REPAIR_AFTER_S * 2)  # a late duplicate outcome would show up by now
    seen = outcomes(events)
    assert {c: len(seen[c]) for c in everything if len(seen[c]) != 1} == {}  # exactly one each
    assert {seen[c][0]["type"] for c in everything} == {"billing.command.completed"}
    assert sum(1 for c in seen if c not in everything) == 0
    # The broker really lost acked commands, and the inbox repair is what brought them back.
    (resent,) = query(chaos_db, "SELECT count(*) FROM command_inbox WHERE repairs > 0")[0]
    assert resent > 0
    print(f"broker data loss: {resent} of {len(everything)} commands were re-sent by the inbox repair")
    assert query(chaos_db, "SELECT count(*) FROM command_inbox WHERE finished_at IS NULL") == [(0,)]
    assert query(chaos_db, "SELECT count(*) FROM dead_letters") == [(0,)]
    used = fleet_usage(chaos_db, tenants)
    assert used == {t: COMMANDS // TENANTS for t in tenants}  # each usage record counted once


def backlog(own_redis, prefix: str) -> int:
    """Messages waiting in the fleet's Dramatiq queue of apply_command (RedisBroker's list)."""
    import redis

    client = redis.Redis.from_url(own_redis.url, socket_connect_timeout=2)
    try:
        return client.llen(f"{prefix}:{prefix}.commands")
    finally:
        client.close()


def fleet_usage(database_url: str, tenants: list[str]) -> dict[str, int]:
    rows = query(database_url, "SELECT tenant_id, sum(used) FROM usage_counters WHERE tenant_id = ANY(%s) "
                 "GROUP BY tenant_id", tenants)
    return {tenant: int(used) for tenant, used in rows}
