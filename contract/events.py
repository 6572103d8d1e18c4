"""The events billing-sync publishes on `billing.events`, part of the external contract (the
README's "Events (out)"): their CloudEvents types and what their `data` holds.

The outbox stores each as a row (`uow.outbox.add(type, subject, data)`); the relay publishes it
as a CloudEvent with the tenant as `subject`. Consumers switch on `type`.
"""
from __future__ import annotations

from typing import Any, TypedDict

from .reasons import FailureReason

ENTITLEMENTS_CHANGED = "billing.entitlements.changed"
COMMAND_COMPLETED = "billing.command.completed"
COMMAND_FAILED = "billing.command.failed"

EVENT_TYPES = (ENTITLEMENTS_CHANGED, COMMAND_COMPLETED, COMMAND_FAILED)


class EntitlementsChangedData(TypedDict):
    """`billing.entitlements.changed`: a tenant's entitlements as they are now, and why."""

    tenant_id: str
    version: int  # grows by one with each real change of the tenant
    plan: str
    status: str
    features: list[str]
    limits: dict[str, int]
    period_end: str | None
    cause: str | None  # the Stripe event, command id or job that changed them


class CommandCompletedData(TypedDict, total=False):
    """`billing.command.completed`: the command's ids and what it did (per command type)."""

    command_id: str
    tenant_id: str
    type: str


class CommandFailedData(TypedDict):
    """`billing.command.failed`: the command's ids (those readable), a documented reason and a
    detail for people."""

    command_id: str | None
    tenant_id: str | None
    type: str | None
    reason: FailureReason
    detail: str


EventData = dict[str, Any]
