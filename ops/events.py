"""`billing-sync events replay evt_…`: one Stripe event fetched by id and run through the normal
pipeline (`handlers/event_replay.py`), then its outcome from the ledger.

With a shared broker the event goes to the running workers and this waits (up to `wait_s`) for
the ledger row or a dead letter. With the embedded broker no worker can be reached from here, so
it runs once, here, as `dlq replay` does.
"""
from __future__ import annotations

from typing import Any

from ..handlers.event_replay import replay_event
from ..handlers.messagebus import Bus
from ..models import utcnow
from .dead_letters import actor_sender
from .outcomes import wait_for_outcome


def replay(event_id: str, *, bus: Bus | None = None, broker=None, wait_s: float = 30.0) -> tuple[dict[str, Any], int]:
    """(the report, the exit code): 0 when the event was applied or ignored (now or before),
    1 when Stripe has no such event, it failed, or no outcome came within `wait_s`."""
    if bus is None:
        from ..bootstrap import bootstrap

        bus = bootstrap()
    send = actor_sender(bus, broker)
    started = utcnow()
    failures: list[str] = []

    def enqueue(message: dict) -> None:
        try:
            send("process_stripe_event", [message], {})
        except Exception as exc:  # embedded: the handler ran here and failed (no dead letter is written)
            failures.append(f"{type(exc).__name__}: {str(exc)[:300]}")

    report = bus.call(replay_event, event_id, enqueue_stripe_event=enqueue)
    if failures:
        return {**report, "outcome": "failed", "detail": failures[0]}, 1
    if not report["found"]:
        return {**report, "outcome": None, "detail": "Stripe has no such event (events are kept 30 days)"}, 1
    if not report["sent"]:
        return {**report, "outcome": "duplicate", "detail": "already in the ledger; nothing sent "
                "(billing-sync reconcile --tenant T re-reads a tenant from Stripe)"}, 0
    found = wait_for_outcome(bus, event_id, wait_s, dead_since=started)
    if found is None:
        return {**report, "outcome": None, "detail": f"sent, no outcome within {wait_s:g} s (the workers may be "
                "busy or down; billing-sync tenant show T tells later)"}, 1
    return {**report, **found, "detail": None}, 0 if found["outcome"] in ("applied", "ignored") else 1
