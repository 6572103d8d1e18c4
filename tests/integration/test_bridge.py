"""The bridge on real Redis and RabbitMQ with real PostgreSQL: valid commands reach the
apply_command actor, malformed ones end as billing.command.failed (invalid) plus a dead letter,
and the bridge keeps consuming; nothing is acked while the database or broker is down.

Each test is its own deployment (a unique BILLING_QUEUE_PREFIX, hence its own exchanges), so
concurrent test sessions on the shared broker do not see each other's commands."""
from __future__ import annotations

import json
import pickle
import time
import uuid
import zlib

import pytest
from sqlalchemy import select

from billing_sync.client import CommandPublisher, publish_command
from billing_sync.contract.commands import MAX_COMMAND_BYTES
from billing_sync.models import ProcessedMessage
from billing_sync.models.text import db_text

from bridge_helpers import Running, dead_letters, delete_commands_queue, failed_events, raw_publish
from contexts import Clock, make_bus, wait_until


@pytest.fixture
def bus(make_settings, pg_url, pg_engine, unique_prefix, bus_url):
    settings = make_settings(database_url=pg_url, events_url=bus_url, queue_prefix=unique_prefix)
    yield make_bus(settings, pg_engine, None, Clock())  # the bridge never calls Stripe
    delete_commands_queue(bus_url, unique_prefix)


def test_valid_commands_reach_the_workers_and_malformed_ones_fail_invalid(bus, bus_url):
    url = bus_url
    with Running(bus, url) as running:
        first = publish_command(url, "billing.subscription.change", "t1", {"seats": 3},
                                queue_prefix=bus.settings.queue_prefix)
        raw_publish(bus, b"{not json", content_type="application/json", content_encoding="utf-8")
        raw_publish(bus, {"hello": "world"}, serializer="json")
        raw_publish(bus, {"specversion": "1.0", "id": "cmd-bad-data", "source": "test",
                          "type": "billing.subscription.change", "subject": "t2", "data": {"seats": "many"}},
                    serializer="json", routing_key="subscription.change")
        raw_publish(bus, {"specversion": "1.0", "id": "cmd-bad-type", "source": "test",
                          "type": "billing.tenant.teleported", "subject": "t3", "data": {}}, serializer="json")
        raw_publish(bus, b"\x80\x04pickled", content_type="application/x-python-serialize", content_encoding="binary")
        last = publish_command(url, "tenant.deleted", "t4", {}, queue_prefix=bus.settings.queue_prefix)
        wait_until(lambda: len(running.sent) == 2 and len(failed_events(bus)) == 5, what="all seven messages")

    assert [e["id"] for e in running.sent] == [first, last]
    assert running.sent[0]["type"] == "billing.subscription.change" and running.sent[0]["data"]["seats"] == 3
    failed = failed_events(bus)
    assert {f["reason"] for f in failed} == {"invalid"}
    by_id = {f["command_id"]: f for f in failed}
    assert by_id["cmd-bad-data"]["tenant_id"] == "t2" and "seats" in by_id["cmd-bad-data"]["detail"]
    assert by_id["cmd-bad-data"]["type"] == "billing.subscription.change"
    assert "unknown command type" in by_id["cmd-bad-type"]["detail"]
    assert [f["command_id"] for f in failed].count(None) == 3  # not JSON, not a CloudEvent, pickle
    letters = dead_letters(bus)
    assert len(letters) == 5 and {d["source"] for d in letters} == {"bridge"}
    assert "{not json" in [d["body"] for d in letters]
    assert {d["reason"] for d in letters} == {"invalid"}
    assert running.bridge.counts == {"sent": 2, "invalid": 5}
    with bus.uow_factory() as uow:  # an invalid message does not use up its id (ledgered by content instead)
        assert uow.session.get(ProcessedMessage, "cmd-bad-data") is None


def test_a_redelivered_invalid_command_fails_once(bus, bus_url):
    bad = {"specversion": "1.0", "id": "cmd-twice", "source": "test", "type": "billing.usage.recorded",
           "subject": "t1", "data": {"meter": "api_calls", "quantity": "lots"}}
    with Running(bus, bus_url) as running:
        raw_publish(bus, bad, serializer="json")
        raw_publish(bus, bad, serializer="json")
        wait_until(lambda: sum(running.bridge.counts.values()) == 2, what="both deliveries")
    assert running.bridge.counts == {"invalid": 1, "duplicate": 1}
    assert len(failed_events(bus)) == 1 and len(dead_letters(bus)) == 1


def test_commands_published_before_the_bridge_starts_are_kept(bus, bus_url, unique_prefix):
    with CommandPublisher(bus_url, queue_prefix=unique_prefix) as publisher:
        ids = [publisher.publish("billing.subscription.resume", f"t{i}", {}) for i in range(5)]
    with Running(bus, bus_url) as running:
        wait_until(lambda: len(running.sent) == 5, what="queued commands")
    assert sorted(e["id"] for e in running.sent) == sorted(ids)


def test_nothing_is_acked_while_the_workers_broker_is_down(bus, bus_url):
    attempts: list[str] = []
    delivered: list[dict] = []

    def flaky_send(envelope: dict) -> None:  # the broker is down for the first two tries
        attempts.append(envelope["id"])
        if attempts.count(envelope["id"]) <= 2:
            raise ConnectionError("dramatiq broker unreachable")
        delivered.append(envelope)

    with Running(bus, bus_url, send=flaky_send) as running:
        command_id = publish_command(bus_url, "billing.subscription.resume", "t1", {},
                                     queue_prefix=bus.settings.queue_prefix)
        wait_until(lambda: command_id in [e["id"] for e in delivered], timeout=15, what="delivery after the outage")
    assert attempts.count(command_id) == 3 and [e["id"] for e in delivered].count(command_id) == 1
    assert running.bridge.counts["requeued"] >= 2 and running.bridge.counts["sent"] >= 1
    assert failed_events(bus) == []


def test_an_invalid_message_is_requeued_while_the_database_is_down(bus, bus_url, make_settings, unique_prefix):
    down = make_settings(database_url="postgresql://postgres@127.0.0.1:1/none", events_url=bus_url,
                         queue_prefix=unique_prefix)
    from billing_sync.models import make_engine

    dead_engine = make_engine(down.database_url, connect_args={"connect_timeout": 1})
    outage = make_bus(down, dead_engine, None, Clock())
    with Running(outage, bus_url) as running:
        raw_publish(bus, b"not json at all", content_type="application/json", content_encoding="utf-8")
        wait_until(lambda: running.bridge.counts.get("requeued", 0) >= 2, timeout=15, what="requeues")
        assert running.bridge.counts.get("invalid") is None
    # The database is back (a bridge on the real one): the message was kept and is failed now.
    with Running(bus, bus_url) as running:
        wait_until(lambda: "not json at all" in [d["body"] for d in dead_letters(bus)], timeout=15,
                   what="the kept message")
    assert [d["body"] for d in dead_letters(bus)].count("not json at all") == 1


def test_the_default_sender_enqueues_apply_command_on_the_dramatiq_broker(bus, bus_url, redis_url, make_settings,
                                                                          unique_prefix):
    from billing_sync.workers import broker as brokers
    from billing_sync.workers.actors import queue_name
    from billing_sync.workers.broker import make_broker

    previous = brokers._current
    broker = make_broker(make_settings(broker_url=redis_url, queue_prefix=f"{unique_prefix}-dq"))
    try:
        with Running(bus, bus_url, send=None) as running:  # None: the default, apply_command.send
            command_id = publish_command(bus_url, "billing.tenant.deleted", "t1", {}, id=str(uuid.uuid4()),
                                         queue_prefix=bus.settings.queue_prefix)
            wait_until(lambda: running.bridge.counts.get("sent") == 1, what="send")
        consumer = broker.consume(queue_name(f"{unique_prefix}-dq", "commands"), prefetch=1, timeout=2000)
        try:
            message = wait_until(lambda: next(consumer), what="the apply_command message")
            consumer.ack(message)
        finally:
            consumer.close()
        assert message.actor_name == "apply_command"
        assert message.args[0]["id"] == command_id and message.args[0]["type"] == "billing.tenant.deleted"
    finally:
        broker.client.delete(*broker.client.keys(f"{unique_prefix}-dq*") or ["none"])
        broker.close()
        if previous is not None:  # leave the process's current broker as other tests set it
            brokers.set_current_broker(previous)


def test_body_is_kept_verbatim_for_inspection(bus, bus_url):
    body = json.dumps({"specversion": "1.0", "id": "cmd-x", "source": "s", "type": "billing.tenant.updated",
                       "subject": "t1", "data": {"email": "nope"}})
    with Running(bus, bus_url) as running:
        raw_publish(bus, body.encode(), content_type="application/cloudevents+json", content_encoding="utf-8")
        wait_until(lambda: running.bridge.counts.get("invalid") == 1)
    (letter,) = dead_letters(bus)
    assert json.loads(letter["body"]) == json.loads(body) and letter["message_id"] == "cmd-x"


# -- the durable inbox: nothing depends on the Dramatiq broker keeping what the bridge acked ------


def inbox_rows(bus) -> dict[str, dict]:
    from billing_sync.models import CommandInbox

    with bus.uow_factory() as uow:
        return {r.command_id: {"tenant_id": r.tenant_id, "type": r.type, "finished": r.finished_at is not None,
                               "envelope": json.loads(r.envelope)}
                for r in uow.session.execute(select(CommandInbox).order_by(CommandInbox.seq)).scalars()}


def test_a_command_is_recorded_before_it_is_sent_and_one_the_broker_lost_is_sent_again(bus, bus_url):
    from billing_sync.handlers.command_inbox import repair

    recorded_at_send: dict[str, bool] = {}

    def lossy_send(envelope: dict) -> None:  # the broker takes it, acks, then loses its data
        recorded_at_send[envelope["id"]] = envelope["id"] in inbox_rows(bus)

    with Running(bus, bus_url, send=lossy_send):
        ids = [publish_command(bus_url, "billing.subscription.change", f"t{i}", {"seats": i + 1},
                               queue_prefix=bus.settings.queue_prefix) for i in range(3)]
        wait_until(lambda: set(ids) <= set(recorded_at_send), what="three sends")
    assert [recorded_at_send[i] for i in ids] == [True, True, True]
    rows = inbox_rows(bus)
    assert [i for i in rows if i in ids] == ids and not any(rows[i]["finished"] for i in ids)
    assert rows[ids[1]]["tenant_id"] == "t1" and rows[ids[1]]["envelope"]["data"]["seats"] == 2

    resent: list[dict] = []
    assert bus.call(repair, resent.append, older_than_s=0)["resent"] >= 3
    mine = [e for e in resent if e["id"] in ids]
    assert [e["id"] for e in mine] == ids and mine[2]["data"]["seats"] == 3


def test_a_redelivered_command_that_has_its_outcome_is_not_sent_again(bus, bus_url):
    from billing_sync.handlers.command_dispatch import fail_command

    command_id = str(uuid.uuid4())
    with Running(bus, bus_url) as running:
        def mine():
            return [e for e in running.sent if e["id"] == command_id]

        publish_command(bus_url, "billing.tenant.deleted", "t1", {}, id=command_id,
                        queue_prefix=bus.settings.queue_prefix)
        wait_until(mine, what="the first delivery")
        bus.call(fail_command, mine()[0], "bms_unavailable", "as a worker would")  # its outcome
        assert inbox_rows(bus)[command_id]["finished"] is True
        publish_command(bus_url, "billing.tenant.deleted", "t1", {}, id=command_id,
                        queue_prefix=bus.settings.queue_prefix)
        wait_until(lambda: running.bridge.counts.get("duplicate"), what="the redelivery")
    assert len(mine()) == 1


def test_a_valid_command_is_requeued_while_the_database_is_down(bus, bus_url, make_settings, unique_prefix):
    down = make_settings(database_url="postgresql://postgres@127.0.0.1:1/none", events_url=bus_url,
                         queue_prefix=unique_prefix)
    from billing_sync.models import make_engine

    outage = make_bus(down, make_engine(down.database_url, connect_args={"connect_timeout": 1}), None, Clock())
    with Running(outage, bus_url) as running:
        command_id = publish_command(bus_url, "billing.tenant.deleted", "t1", {},
                                     queue_prefix=bus.settings.queue_prefix)
        wait_until(lambda: running.bridge.counts.get("requeued", 0) >= 2, timeout=15, what="requeues")
        assert running.sent == []  # never sent (nor acked) before it is recorded
    with Running(bus, bus_url) as running:
        wait_until(lambda: command_id in [e["id"] for e in running.sent], timeout=15, what="the kept command")
    assert command_id in inbox_rows(bus)


# -- hostile input ------------------------------------------------------------------------------

def command_json(**changes) -> bytes:
    """A valid command's JSON with some attributes changed (`data` merged)."""
    event = {"specversion": "1.0", "id": "cmd-poison", "source": "test", "type": "billing.subscription.change",
             "subject": "t1", "data": {"seats": 2}}
    event.update({k: v for k, v in changes.items() if k != "data"})
    event["data"] = {**event["data"], **changes.get("data", {})}
    return json.dumps(event).encode()


JSON = {"content_type": "application/json", "content_encoding": "utf-8"}
DEEP = b"[" * 100_000 + b"]" * 100_000
# name → (body, publish options, the command_id its failure must name). One line per case; bodies
# differ (the same bytes twice would be one message delivered twice: one outcome).
POISON = {
    "100k-deep nesting": (DEEP, JSON, None),
    "100k-deep nesting in data": (command_json()[:-2] + b', "x": ' + DEEP + b"}}", JSON, None),
    "NUL bytes": (b"\x00" * 64, JSON, None),
    "raw NUL in a string": (command_json(id="cmd-\x00").replace(b"\\u0000", b"\x00"), JSON, None),
    "pickle as JSON": (pickle.dumps({"id": "cmd-pickle-json"}), JSON, None),
    "pickle": (pickle.dumps({"id": "cmd-pickle"}), {"content_type": "application/x-python-serialize",
                                                    "content_encoding": "binary"}, None),
    "UTF-16 JSON": (command_json().decode().encode("utf-16"), JSON, None),
    "NUL in id": (command_json(id="cmd-\x00"), JSON, None),
    "surrogate in id": (command_json(id="cmd-\ud800"), JSON, None),
    "NUL in type": (command_json(id="cmd-nul-type", type="billing.subscription.change\x00"), JSON, "cmd-nul-type"),
    "surrogate in type": (command_json(id="cmd-sur-type", type="billing.\udc80"), JSON, "cmd-sur-type"),
    "NUL in data": (command_json(id="cmd-nul-data", data={"plan": "pro\x00"}), JSON, "cmd-nul-data"),
    "NaN": (command_json(id="cmd-nan", data={"seats": float("nan")}), JSON, None),
    "over 256 KiB": (command_json(id="cmd-big", data={"pad": "x" * 300_000}), JSON, None),
    "not an object": (b'["billing.tenant.deleted"]', JSON, None),
    "zlib-compressed command": (zlib.compress(command_json(id="cmd-zlib")),
                                {**JSON, "headers": {"compression": "application/x-gzip"}}, None),
    "compression header, not compressed": (command_json(id="cmd-gz"), {**JSON, "headers": {"compression": "gzip"}},
                                           None),
    "strict types": (command_json(id="cmd-strict", data={"seats": True}), JSON, "cmd-strict"),
}


def stored(body: bytes) -> str:
    """What the dead letter keeps of a body."""
    return db_text(body[:MAX_COMMAND_BYTES].decode("utf-8", errors="backslashreplace"))


def test_every_poison_message_fails_invalid_once_and_the_bridge_goes_on(bus, bus_url):
    """All of POISON through one bridge, then a valid command: each is failed at once (never
    requeued, no stall), with one failure event and one dead letter keeping its body."""
    with Running(bus, bus_url) as running:
        started = time.monotonic()
        for body, options, _ in POISON.values():
            raw_publish(bus, body, **options)
        valid = publish_command(bus_url, "billing.tenant.deleted", "t9", {}, queue_prefix=bus.settings.queue_prefix)
        wait_until(lambda: [e["id"] for e in running.sent] == [valid], timeout=15, what="the valid command after them")
        elapsed = time.monotonic() - started
    assert running.bridge.counts == {"invalid": len(POISON), "sent": 1}  # never requeued
    failed, letters = failed_events(bus), dead_letters(bus)
    assert len(failed) == len(letters) == len(POISON) and {f["reason"] for f in failed} == {"invalid"}
    for name, (body, _, command_id) in POISON.items():
        (letter,) = [d for d in letters if d["body"] == stored(body)] or [None]
        assert letter is not None, f"{name}: no dead letter"
        assert (letter["source"], letter["reason"], letter["message_id"]) == ("bridge", "invalid", command_id), name
    assert sorted(f["command_id"] or "" for f in failed) == sorted(c or "" for _, _, c in POISON.values())
    assert elapsed < 10, f"the consumer was held up: {elapsed:.1f} s for {len(POISON) + 1} messages"


def test_the_dead_letter_keeps_the_body_of_a_message_that_is_not_utf8(bus, bus_url):
    with Running(bus, bus_url) as running:
        raw_publish(bus, b'{"id": "\xff\xfe"}', **JSON)
        wait_until(lambda: running.bridge.counts.get("invalid") == 1)
    (letter,) = dead_letters(bus)
    assert letter["body"] == '{"id": "\\xff\\xfe"}' and "UTF-8" in letter["detail"]


def test_an_invalid_message_does_not_use_up_its_id(bus, bus_url):
    with Running(bus, bus_url) as running:
        raw_publish(bus, command_json(id="cmd-again", data={"seats": "3"}), **JSON)
        wait_until(lambda: running.bridge.counts.get("invalid") == 1)
        raw_publish(bus, command_json(id="cmd-again", data={"seats": 3}), **JSON)
        wait_until(lambda: running.bridge.counts.get("sent") == 1, what="the corrected command")
    assert [e["id"] for e in running.sent] == ["cmd-again"] and running.sent[0]["data"]["seats"] == 3
    assert [f["command_id"] for f in failed_events(bus)] == ["cmd-again"]


def test_a_failure_that_cannot_be_written_is_kept_escaped_after_three_attempts(bus, bus_url, monkeypatch):
    """Writing the failure keeps failing, not because the database is down (that requeues for as
    long as it lasts) but because of the message: the third attempt keeps it in a storable form."""
    from billing_sync.workers import bridge as bridge_module

    real = bridge_module.fail_command
    attempts = []

    def fails_unless_escaped(envelope, *args, uow_factory, **kwargs):
        attempts.append(envelope)
        if envelope is not None:
            raise ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return real(envelope, *args, uow_factory=uow_factory, **kwargs)

    monkeypatch.setattr(bridge_module, "fail_command", fails_unless_escaped)
    with Running(bus, bus_url) as running:
        raw_publish(bus, command_json(id="cmd-stuck", data={"seats": "Ä"}), **JSON)
        wait_until(lambda: running.bridge.counts.get("invalid") == 1, timeout=15, what="the escaped failure")
    assert running.bridge.counts == {"requeued": 2, "invalid": 1} and len(attempts) == 4
    (failed,) = failed_events(bus)
    assert failed["command_id"] is None and "kept escaped after 3 failed attempts" in failed["detail"]
    (letter,) = dead_letters(bus)
    assert letter["body"].isascii() and "cmd-stuck" in letter["body"] and letter["message_id"] is None


def test_each_message_without_a_readable_id_gets_its_own_outcome(bus, bus_url):
    """Nothing tells a redelivery of `{}` from a second `{}`: both are answered and kept, rather
    than the second being taken for a duplicate and acked without a trace."""
    with Running(bus, bus_url) as running:
        raw_publish(bus, b"{}", **JSON)
        raw_publish(bus, b"{}", **JSON)
        wait_until(lambda: running.bridge.counts.get("invalid") == 2, what="both messages")
    assert [f["command_id"] for f in failed_events(bus)] == [None, None]
    assert [d["body"] for d in dead_letters(bus)] == ["{}", "{}"]
