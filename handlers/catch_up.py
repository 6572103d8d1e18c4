"""Catch-up: list the Stripe events created since the newest one seen and enqueue those not in
the ledger, for webhooks that never arrived (an endpoint down for longer than Stripe retries).

The listing is an edge like the ingress: each listed event goes through the one Stripe event
check (contract/stripe_event.py) before anything reads it.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable

import structlog

from ..bms.port import BillingGateway
from ..contract.stripe_event import EventProblem, StripeEventFacts, read_event
from .account_pin import check_account
from .dependencies import Clock, Progress, UowFactory, no_progress

log = structlog.get_logger(__name__)

EVENTS_CURSOR = "events_seen"
# Stripe timestamps are whole seconds and its event list is eventually consistent: look back a
# little before the newest event seen; the ledger drops what was already processed.
CATCH_UP_OVERLAP_S = 60
# With no cursor yet (a new deployment), look back this far rather than 30 days of history.
CATCH_UP_INITIAL_LOOKBACK_S = 3600


def catch_up(enqueue: Callable[[dict[str, Any]], None], *, uow_factory: UowFactory, gateway: BillingGateway,
             now: Clock, progress: Progress = no_progress) -> int:
    """Enqueue the Stripe events created since the newest one seen that are not in the ledger.

    The cursor moves only after every event was handed to `enqueue`, so a failure replays them.
    Another Stripe account's events are never enqueued (the account pin).
    """
    check_account(gateway=gateway, uow_factory=uow_factory, now=now)
    started = now()
    with uow_factory() as uow:
        cursor = uow.cursors.value(EVENTS_CURSOR)
        seen = int(cursor) if cursor is not None else None
    since = (seen - CATCH_UP_OVERLAP_S) if seen is not None else int((started - timedelta(
        seconds=CATCH_UP_INITIAL_LOOKBACK_S)).timestamp())
    listed = list(gateway.events_since(since))
    if not listed:
        return 0
    # An event that breaks the Stripe event check must not stop the catch-up (or reach the
    # ledger query). It goes to the worker, which fails it as invalid with one dead letter, in the
    # pass whose window first holds it (caveat: one with a `created` that is no integer, which
    # Stripe's own filter never lists, goes every pass).
    usable: list[tuple[StripeEventFacts, dict[str, Any]]] = []
    unusable: list[dict[str, Any]] = []
    for event in listed:
        try:
            usable.append((read_event(event), event))
        except EventProblem:
            if seen is None or not isinstance(event.get("created"), int) or event["created"] > seen:
                unusable.append(event)
    usable.sort(key=lambda pair: (pair[0].created or 0, pair[0].id))
    with uow_factory() as uow:
        done = uow.ledger.processed_among(facts.id for facts, _ in usable)
    to_send = [event for facts, event in usable if facts.id not in done] + unusable
    received_at = started.isoformat()
    for sent, event in enumerate(to_send):
        progress("events enqueued", sent, len(to_send))
        enqueue({"event": event, "received_at": received_at})
    progress("events enqueued", len(to_send), len(to_send))
    newest = max((e["created"] for e in listed if type(e.get("created")) is int), default=None)
    if newest is not None:
        with uow_factory() as uow:
            uow.cursors.set(EVENTS_CURSOR, str(max(newest, seen or 0)), now())
            uow.commit()
    if to_send:
        log.info("reconcile.catch_up", enqueued=len(to_send), listed=len(listed), unusable=len(unusable),
                 since=since)
    return len(to_send)
