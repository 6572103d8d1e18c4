"""Waiting for what the fleet made of one message (`events replay`, `send`): its ledger row, and
for a command its outcome event, else a dead letter under its id; polled from the database, which
every role writes to, so it works whatever the broker and wherever the workers run."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from ..contract.events import COMMAND_COMPLETED, COMMAND_FAILED
from ..handlers.messagebus import Bus

POLL_S = 0.2


def outcome_of(bus: Bus, message_id: str, tenant_id: str | None = None, *,
               dead_since: datetime | None = None) -> dict[str, Any] | None:
    """The recorded outcome of `message_id` now, or None: `{"outcome", "reason", "processed_at"}`,
    plus `event` (a command's outcome event data, when `tenant_id` is given), or
    `{"outcome": "dead_lettered", "dead_letter": id, "reason"}` for a dead letter written since
    `dead_since` (a replay that failed again is a new dead letter)."""
    with bus.uow_factory() as uow:
        row = uow.ledger.get(message_id)
        if row is not None:
            found: dict[str, Any] = {"outcome": row.outcome, "reason": row.reason,
                                     "processed_at": row.processed_at.isoformat()}
            if tenant_id is not None:
                events = uow.outbox.of_subject(tenant_id, (COMMAND_COMPLETED, COMMAND_FAILED), limit=50)
                found["event"] = next(({"type": e.type, "data": e.data} for e in events
                                       if isinstance(e.data, dict) and e.data.get("command_id") == message_id), None)
            return found
        dead = uow.dead_letters.for_message(message_id, since=dead_since)
        if dead:
            return {"outcome": "dead_lettered", "dead_letter": dead[0].id, "reason": dead[0].reason,
                    "processed_at": dead[0].failed_at.isoformat()}
    return None


def wait_for_outcome(bus: Bus, message_id: str, timeout_s: float, tenant_id: str | None = None, *,
                     dead_since: datetime | None = None) -> dict[str, Any] | None:
    """`outcome_of` once it has one, or None after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = outcome_of(bus, message_id, tenant_id, dead_since=dead_since)
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(POLL_S)
