"""`billing-sync send TYPE TENANT '{json}'`: an operator publishes a product command on
`billing.commands`, as a product service would (the caller passes the publisher: `client.py` sits
above this layer), then waits for its outcome.

The command takes the product's path (bridge, inbox, workers, Stripe), so it is ordered behind
the tenant's other commands and idempotent under its id like any other; the outcome is read back
from the database (the ledger row and the outcome event the relay publishes), so nothing has to
be bound to `billing.events` for it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..handlers.messagebus import Bus
from ..models import utcnow
from .outcomes import wait_for_outcome

Publish = Callable[[str, str, dict[str, Any], str | None], str]  # (type, tenant, data, id) -> command id


def send(command_type: str, tenant_id: str, data: dict[str, Any], *, publish: Publish, bus: Bus,
         command_id: str | None = None, timeout_s: float = 30.0) -> tuple[dict[str, Any], int]:
    """(the report, the exit code): 0 when the command completed, 1 when it failed, was
    dead-lettered or had no outcome within `timeout_s` (it is still on its way then: its outcome
    comes later, `billing-sync tenant show` shows it)."""
    started = utcnow()
    sent_id = publish(command_type, tenant_id, data, command_id)
    found = wait_for_outcome(bus, sent_id, timeout_s, tenant_id, dead_since=started)
    full_type = command_type if command_type.startswith("billing.") else f"billing.{command_type}"
    report: dict[str, Any] = {"command_id": sent_id, "tenant_id": tenant_id, "type": full_type}
    if found is None:
        return {**report, "outcome": None, "reason": None, "event": None,
                "detail": f"no outcome within {timeout_s:g} s; the command stays queued"}, 1
    event = found.get("event")
    detail = event["data"].get("detail") if event else None
    return {**report, "outcome": found["outcome"], "reason": found.get("reason"), "event": event,
            "detail": detail}, 0 if found["outcome"] == "completed" else 1
