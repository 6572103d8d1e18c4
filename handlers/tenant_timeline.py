"""A tenant's story in time order, for operators and support staff (`billing-sync tenant show`,
`GET /v1/admin/tenants/{id}/timeline`): the Stripe events applied to it, the commands received
for it and their outcomes, every version of its entitlements with its cause, and its dead letters.

A read of the database only (no Stripe call). Each entry is plain JSON:
`{"at", "kind", "id", "summary", "data"}`, `kind` one of `stripe_event`, `command`, `outcome`,
`entitlements`, `dead_letter`. The caveat: what retention pruned (old ledger, inbox, outbox or
dead-letter rows) is no longer told; the entitlement versions are kept.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from ..contract.events import COMMAND_COMPLETED, COMMAND_FAILED
from ..models import UnitOfWork
from .dependencies import UowFactory

KINDS = ("stripe_event", "command", "outcome", "entitlements", "dead_letter")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Entry = dict[str, Any]


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _entry(at: datetime, kind: str, entry_id: str | int, summary: str, data: dict[str, Any]) -> Entry:
    return {"at": at.isoformat(), "kind": kind, "id": str(entry_id), "summary": summary, "data": data}


def tenant_timeline(tenant_id: str, *, uow_factory: UowFactory, since: datetime | None = None,
                    limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """`{"tenant_id", "found", "stripe_customer_id", "entries"}`: the newest `limit` entries (at or
    after `since`), oldest first. `found` is false when nothing at all is known of the tenant."""
    limit = max(1, min(limit, MAX_LIMIT))
    with uow_factory() as uow:
        tenant = uow.tenants.get(tenant_id)
        customer_id = tenant.stripe_customer_id if tenant is not None else None
        entries = [*_versions(uow, tenant_id, since, limit), *_ledger(uow, tenant_id, since, limit),
                   *_commands(uow, tenant_id, since, limit), *_dead_letters(uow, tenant_id, customer_id, since, limit)]
    entries.sort(key=lambda entry: (entry["at"], KINDS.index(entry["kind"])))
    return {"tenant_id": tenant_id, "found": tenant is not None or bool(entries),
            "stripe_customer_id": customer_id, "entries": entries[-limit:]}


def _versions(uow: UnitOfWork, tenant_id: str, since: datetime | None, limit: int) -> list[Entry]:
    return [_entry(row.created_at, "entitlements", f"v{row.version}",
                   f"v{row.version} {row.plan} ({row.status}) cause {row.cause or '-'}",
                   {"version": row.version, "plan": row.plan, "status": row.status, "features": list(row.features),
                    "limits": dict(row.limits), "period_end": _iso(row.period_end), "cause": row.cause})
            for row in uow.entitlement_history.of_tenant(tenant_id, since=since, limit=limit)]


def _ledger(uow: UnitOfWork, tenant_id: str, since: datetime | None, limit: int) -> list[Entry]:
    """Stripe events (also the catalog events its versions name) and command outcomes."""
    causes = {cause for cause in uow.entitlement_history.causes_of(tenant_id) if cause.startswith("evt_")}
    outcomes = {str(row.data.get("command_id")): row.data
                for row in uow.outbox.of_subject(tenant_id, (COMMAND_COMPLETED, COMMAND_FAILED), since=since,
                                                 limit=limit) if isinstance(row.data, dict)}
    entries = []
    for row in uow.ledger.of_tenant(tenant_id, also=causes, since=since, limit=limit):
        reason = f" {row.reason}" if row.reason else ""
        if row.kind == "command":
            data = {"type": row.type, "outcome": row.outcome, "reason": row.reason,
                    "event": outcomes.get(row.id)}  # the outcome event's data, while the outbox keeps it
            entries.append(_entry(row.processed_at, "outcome", row.id, f"{row.type} {row.outcome}{reason}", data))
        else:
            entries.append(_entry(row.processed_at, "stripe_event", row.id, f"{row.type} {row.outcome}{reason}",
                                  {"type": row.type, "outcome": row.outcome, "reason": row.reason}))
    return entries


def _commands(uow: UnitOfWork, tenant_id: str, since: datetime | None, limit: int) -> list[Entry]:
    entries = []
    for row in uow.inbox.of_tenant(tenant_id, since=since, limit=limit):
        state = "finished" if row.finished_at else ("waiting its turn" if row.waiting_since else "no outcome yet")
        entries.append(_entry(row.received_at, "command", row.command_id, f"{row.type} received ({state})",
                              {"type": row.type, "finished_at": _iso(row.finished_at), "repairs": row.repairs,
                               "waiting_since": _iso(row.waiting_since)}))
    return entries


def _dead_letters(uow: UnitOfWork, tenant_id: str, customer_id: str | None, since: datetime | None,
                  limit: int) -> list[Entry]:
    commands = [row.command_id for row in uow.inbox.of_tenant(tenant_id, limit=limit)]
    events = [row.id for row in uow.ledger.of_tenant(tenant_id, limit=limit)]
    rows = uow.dead_letters.of_tenant(tenant_id, message_ids=[*commands, *events], customer_id=customer_id,
                                      since=since, limit=limit)
    return [_entry(row.failed_at, "dead_letter", row.id,
                   f"{row.source} {row.message_id or '-'} {row.reason}{' (replayed)' if row.replayed_at else ''}",
                   {"source": row.source, "message_id": row.message_id, "reason": row.reason,
                    "detail": row.detail, "replayed_at": _iso(row.replayed_at)})
            for row in rows]
