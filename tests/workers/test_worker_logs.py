"""What the worker logs about a failed message, on real Redis and PostgreSQL: a transient failure
that will be retried is one WARNING line with its reason (not Dramatiq's ERROR with a traceback
on every attempt); a bug is one ERROR line with the traceback as a field."""
from __future__ import annotations

import logging
import uuid

import structlog

from billing_sync.errors import TransientError

from contexts import wait_until


def _event_message() -> dict:
    event = {"id": f"evt_{uuid.uuid4().hex[:12]}", "object": "event", "type": "invoice.paid",
             "data": {"object": {"id": "in_1"}}}
    return {"event": event, "received_at": "2026-11-23T10:00:00+00:00"}


def test_a_retry_is_one_warning_line_and_a_bug_one_error_line_with_its_traceback(plumbing, handlers, caplog):
    broker, bus, _ = plumbing(max_retries=3, min_backoff_ms=20, max_backoff_ms=50)
    caplog.set_level(logging.DEBUG, logger="dramatiq")
    handlers.event.raise_(TransientError("stripe 503: APIError"), times=1)
    handlers.reconcile.raise_(KeyError("a bug"))
    message = _event_message()
    with structlog.testing.capture_logs() as logs:
        broker.get_actor("process_stripe_event").send(message)
        broker.get_actor("reconcile_tenant").send("tenant-1", "test")
        wait_until(lambda: len(handlers.event.calls) == 2 and any(e["event"] == "message.dead_lettered" for e in logs))

    [retry] = [e for e in logs if e["event"] == "message.retrying"]
    assert retry["log_level"] == "warning" and retry["reason"] == "bms_unavailable"
    assert retry["message_id"] == message["event"]["id"] and retry["attempts"] == 1
    assert "exc_info" not in retry and "stripe 503" in retry["detail"]

    [bug] = [e for e in logs if e["event"] == "message.dead_lettered"]
    assert bug["log_level"] == "error" and bug["reason"] == "internal_error" and bug["actor"] == "reconcile_tenant"
    assert isinstance(bug["exc_info"], KeyError)  # rendered as the line's `exception` field

    # Dramatiq's own lines about these failures (tracebacks, "Retrying message…") are not written.
    said = [r.getMessage() for r in caplog.records if r.name.startswith("dramatiq")]
    assert not [m for m in said if m.startswith(("Failed to process message", "Retrying message",
                                                  "Retries exceeded"))], said
