"""`billing-sync events replay evt_…`: one Stripe event, fetched by id from Stripe, handed to the
workers the way the ingress hands a webhook (`{"event", "received_at"}` for
`process_stripe_event`), so it runs through the normal pipeline: the same event check, the
ledger, the re-read of its object.

For an event whose webhook never came and that catch-up's window no longer covers (it looks back
from the newest event seen). An event already in the ledger is not sent: the pipeline would
drop it as a duplicate (`reconcile --tenant` re-reads a tenant's state instead).
"""
from __future__ import annotations

from typing import Any

from ..bms.port import BillingGateway
from ..contract.stripe_event import EventProblem, read_event
from .account_pin import check_account
from .dependencies import Clock, SendCommand, UowFactory


def replay_event(event_id: str, *, uow_factory: UowFactory, gateway: BillingGateway, now: Clock,
                 enqueue_stripe_event: SendCommand) -> dict[str, Any]:
    """`{"event_id", "found", "type", "sent", "ledger"}`: `found` false when Stripe has no such
    event (a typo, or older than its 30 days), `sent` whether it went to the workers, `ledger`
    the outcome already recorded for it (None when it has none). Another Stripe account's
    database is refused (the account pin); an
    event that fails the event check is sent anyway, to be dead-lettered `invalid` like a webhook
    the ingress would refuse, so the operator sees why."""
    check_account(gateway=gateway, uow_factory=uow_factory, now=now)
    event = gateway.event(event_id)
    if event is None:
        return {"event_id": event_id, "found": False, "type": None, "sent": False, "ledger": None}
    try:
        event_type: str | None = read_event(event).type
    except EventProblem:
        event_type = event.get("type") if isinstance(event.get("type"), str) else None
    with uow_factory() as uow:
        done = uow.ledger.get(event_id)
        ledger = None if done is None else {"outcome": done.outcome, "reason": done.reason,
                                           "processed_at": done.processed_at.isoformat()}
    if ledger is None:
        enqueue_stripe_event({"event": event, "received_at": now().isoformat()})
    return {"event_id": event_id, "found": True, "type": event_type, "sent": ledger is None, "ledger": ledger}
