"""Two deployments (two BILLING_QUEUE_PREFIX values) on one RabbitMQ vhost or Redis database stay
apart: each bridge gets only its own deployment's commands, each deployment's events go only to its
own exchange; the default deployment keeps the documented exchange names; `billing-sync bus declare`
makes commands published before any bridge ran routable; an unroutable command raises."""
from __future__ import annotations

import contextlib
import queue as queue_module
import threading
import uuid

import pytest
from click.testing import CliRunner
from kombu import Connection, Queue

from billing_sync.cli import main
from billing_sync.client import CommandPublisher, Unroutable, publish_command
from billing_sync.config import bus as event_bus
from billing_sync.models import OutboxMessage, make_session_factory
from billing_sync.workers.bridge import Bridge
from billing_sync.workers.relay import Relay

from contexts import Clock, make_bus, wait_until


@pytest.fixture(params=["redis", "rabbitmq"])
def bus_url(request):
    return request.getfixturevalue("redis_url" if request.param == "redis" else "amqp_url")


@pytest.fixture
def deployments(bus_url):
    """Two fresh deployment prefixes on the shared broker; their queues and exchanges are removed after."""
    prefixes = [f"bs-test-{uuid.uuid4().hex[:8]}-{side}" for side in "ab"]
    yield prefixes
    with event_bus.connect(bus_url) as conn:
        channel = conn.default_channel
        for prefix in prefixes:
            watch = Queue(f"{prefix}.watch", event_bus.events_exchange(prefix))
            for entity in (event_bus.commands_queue(prefix), watch, event_bus.commands_exchange(prefix),
                           event_bus.events_exchange(prefix)):
                with contextlib.suppress(Exception):
                    entity(channel).delete()


class RunningBridge:
    def __init__(self, bus):
        self.sent: list[dict] = []
        self.bridge = Bridge(bus, send=self.sent.append, prefetch=4)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.bridge.run, kwargs={"stop_event": self.stop}, daemon=True)

    def __enter__(self):
        self.thread.start()
        assert self.bridge.ready.wait(10), "bridge never started consuming"
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


def test_default_deployment_keeps_the_documented_exchange_names():
    assert event_bus.commands_exchange().name == event_bus.commands_exchange("billing-sync").name == "billing.commands"
    assert event_bus.events_exchange("billing-sync").name == "billing.events"
    assert event_bus.commands_queue("billing-sync").exchange.name == "billing.commands"
    assert event_bus.commands_exchange("staging").name == "staging.billing.commands"
    assert event_bus.events_exchange("staging").name == "staging.billing.events"
    assert CommandPublisher("memory://").exchange.name == "billing.commands"  # client.py without a prefix


def test_two_deployments_on_one_broker_receive_only_their_own_commands(
        bus_url, deployments, make_settings, pg_url, pg_engine):
    a, b = deployments
    bus_a, bus_b = (make_bus(make_settings(database_url=pg_url, events_url=bus_url, queue_prefix=p),
                                 pg_engine, None, Clock()) for p in (a, b))
    with RunningBridge(bus_a) as bridge_a, RunningBridge(bus_b) as bridge_b:
        to_a = [publish_command(bus_url, "subscription.change", f"t{i}", {"seats": 2}, queue_prefix=a)
                for i in range(3)]
        to_b = publish_command(bus_url, "tenant.deleted", "t9", {}, queue_prefix=b)
        wait_until(lambda: len(bridge_a.sent) == 3 and len(bridge_b.sent) == 1, what="each bridge's commands")
        threading.Event().wait(0.5)  # and nothing more arrives: the other deployment's stay away
    assert sorted(e["id"] for e in bridge_a.sent) == sorted(to_a)
    assert [e["id"] for e in bridge_b.sent] == [to_b]


def test_two_deployments_on_one_broker_publish_events_only_on_their_own_exchange(
        bus_url, deployments, make_settings, pg_url, pg_engine):
    a, b = deployments
    watchers = {p: Queue(f"{p}.watch", event_bus.events_exchange(p), routing_key="#", durable=True) for p in (a, b)}
    with event_bus.connect(bus_url) as conn:
        for q in watchers.values():
            q(conn.default_channel).declare()
    bus_a = make_bus(make_settings(database_url=pg_url, events_url=bus_url, queue_prefix=a),
                         pg_engine, None, Clock())
    event_id = str(uuid.uuid4())
    with make_session_factory(pg_engine)() as session, session.begin():
        session.add(OutboxMessage(event_id=event_id, type="billing.entitlements.changed", subject="t1",
                                  data={"tenant_id": "t1", "version": 1, "plan": "pro"}))
    relay = Relay(bus_a)
    try:
        assert relay.publish_pending() == 1
    finally:
        relay.close()
    got = {p: _drain(bus_url, q) for p, q in watchers.items()}
    assert [m["id"] for m in got[a]] == [event_id]
    assert got[b] == []


def _drain(url: str, q: Queue, wait_s: float = 1.5) -> list[dict]:
    found = []
    with Connection(url) as conn, conn.SimpleQueue(q) as simple:
        while True:
            try:
                message = simple.get(timeout=wait_s)
            except queue_module.Empty:
                return found
            message.ack()
            found.append(message.decode())


def test_an_unroutable_command_raises_and_bus_declare_makes_it_routable(bus_url, deployments, monkeypatch):
    prefix = deployments[0]
    with (CommandPublisher(bus_url, queue_prefix=prefix, declare_queue=False) as publisher,
          pytest.raises(Unroutable, match="bus declare")):
        publisher.publish("tenant.deleted", "t1", {})

    monkeypatch.setenv("BILLING_BROKER_URL", bus_url)
    monkeypatch.setenv("BILLING_QUEUE_PREFIX", prefix)
    from billing_sync.config.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["bus", "declare"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert f"queue {prefix}.bridge.commands bound to {prefix}.billing.commands" in result.output

    with CommandPublisher(bus_url, queue_prefix=prefix, declare_queue=False) as publisher:
        command_id = publisher.publish("tenant.deleted", "t1", {})
    kept = _drain(bus_url, event_bus.commands_queue(prefix))  # no bridge ever ran: the command waits for one
    assert [m["id"] for m in kept] == [command_id]
