"""No command body in the bridge's log: a message kombu cannot decode (here: a `compression`
header it cannot undo) is not logged whole by kombu's default `on_decode_error` (and acked
silently); it is failed `invalid` like any other unusable message, and its body is kept only
in its dead letter."""
from __future__ import annotations

import logging

import structlog

from bridge_helpers import Running, dead_letters, failed_events, raw_publish
from contexts import Clock, make_bus, wait_until


def test_an_undecodable_message_is_failed_and_its_body_never_logged(make_settings, pg_url, pg_engine,
                                                                     unique_prefix, caplog):
    url = "memory://"
    bus = make_bus(make_settings(database_url=pg_url, events_url=url, queue_prefix=unique_prefix), pg_engine,
                       None, Clock())
    caplog.set_level(logging.DEBUG)
    body = b'{"specversion": "1.0", "id": "cmd-z", "data": {"email": "ada@example.com", "name": "Ada Secretname"}}'
    with structlog.testing.capture_logs() as logs, Running(bus, url):
        raw_publish(bus, body, content_type="application/json", content_encoding="utf-8",
                    headers={"compression": "application/x-no-such-codec"})
        wait_until(lambda: failed_events(bus), what="the failed outcome")

    assert [f["reason"] for f in failed_events(bus)] == ["invalid"]
    assert [d["body"] for d in dead_letters(bus)] == [body.decode()]
    written = " ".join(r.getMessage() for r in caplog.records) + " ".join(str(e) for e in logs)
    assert "ada@example.com" not in written and "Secretname" not in written
