"""Hostile Stripe events at the worker (real actors, real handlers, Redis and PostgreSQL).

Events reach `process_stripe_event` without passing the ingress too: the scheduler's catch-up
enqueues what `GET /v1/events` lists, `dlq replay` re-sends dead letters. Each unusable event must
end as a permanent `invalid` failure with exactly one dead letter, never `internal_error`, never a
crashed handler, and a usable event whose metadata breaks the tenant-id rule is not taken for a
tenant. The cases are the shared tables in tests/hostile_events.py.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from billing_sync.models import ProcessedMessage, Tenant, make_session_factory, utcnow
from billing_sync.models.tables import DeadLetter

from contexts import make_bus
from fakes import FakeGateway
from hostile_events import HOSTILE_EVENTS, HOSTILE_TENANT_IDS, hostile_event, valid_event


@pytest.fixture
def fleet(worker_settings, pg_engine, redis_cleanup):
    """The real actors and handlers on Redis, their bus on PostgreSQL over a FakeGateway:
    `send(message)` to process_stripe_event, `drain()`, `bus`, `gateway`."""
    from billing_sync.workers.actors import declare_actors
    from billing_sync.workers.broker import make_broker
    from billing_sync.workers.worker import InProcessWorkers

    settings = worker_settings()
    gateway = FakeGateway()
    bus = make_bus(settings, pg_engine, gateway, utcnow)
    broker = make_broker(settings, bus=bus)
    workers = InProcessWorkers(broker, threads=2, idle_poll_ms=50).start()
    actors = declare_actors(broker, settings.queue_prefix)

    def drain() -> None:
        """Wait until every message sent so far has been processed (or failed)."""
        broker.join(actors.process_stripe_event.queue_name, timeout=30_000)
        workers.join()

    yield SimpleNamespace(send=actors.process_stripe_event.send, drain=drain, bus=bus, gateway=gateway)
    workers.stop()
    broker.close()


def rows(bus, model) -> list:
    with make_session_factory(bus.engine)() as session:
        return list(session.execute(select(model)).scalars())


def message(event: dict) -> dict:
    return {"event": event, "received_at": utcnow().isoformat()}


def test_each_unusable_event_fails_invalid_with_one_dead_letter(fleet):
    bus, gateway = fleet.bus, fleet.gateway

    for index, (_name, path, value) in enumerate(HOSTILE_EVENTS):
        event = hostile_event(path, value)
        event["test_case"] = index  # which case a dead letter belongs to (its id may be garbage)
        fleet.send(message(event))

    fleet.drain()
    letters = rows(bus, DeadLetter)
    by_case: dict[int, list[DeadLetter]] = {}
    for letter in letters:
        by_case.setdefault(json.loads(letter.body)["args"][0]["event"]["test_case"], []).append(letter)
    wrong = {name: [(letter.reason, letter.detail) for letter in by_case.get(index, [])]
             for index, (name, _path, _value) in enumerate(HOSTILE_EVENTS)
             if [letter.reason for letter in by_case.get(index, [])] != ["invalid"]}
    assert wrong == {}
    assert all(letter.source == "process_stripe_event" for letter in letters)
    assert all("not a Stripe event" in letter.detail for letter in letters)
    assert rows(bus, ProcessedMessage) == []  # nothing was half-applied
    assert gateway.calls == []  # and nothing reached Stripe


@pytest.mark.parametrize("name, tenant_id", HOSTILE_TENANT_IDS, ids=[case[0] for case in HOSTILE_TENANT_IDS])
def test_metadata_tenant_id_that_breaks_the_rule_is_ignored(fleet, name, tenant_id):
    bus, gateway = fleet.bus, fleet.gateway
    customer = gateway.add_customer()
    gateway.customers[customer["id"]]["metadata"] = {"tenant_id": tenant_id}
    event = valid_event("customer.updated")
    event["data"]["object"] = gateway.retrieve_customer(customer["id"])
    fleet.send(message(event))

    fleet.drain()
    [ledgered] = rows(bus, ProcessedMessage)
    assert (ledgered.id, ledgered.outcome, ledgered.reason) == (event["id"], "ignored", "no_tenant")
    assert rows(bus, Tenant) == []
    assert rows(bus, DeadLetter) == []
