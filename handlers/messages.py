"""What the bus handles: one plain type per kind of work a worker is given.

Entry points build these from what they received (an actor from its Dramatiq message, the
bridge from a bus message) and call `bus.handle(message)`; `handlers/registry.py` routes each
type to its handler. Product commands themselves are typed in `contract/`; `CommandReceived`
carries one as it came off the wire, since telling a valid command from an invalid one (which
gets its own failed outcome) is the command pipeline's first step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .stripe_event import StripeEvent


@dataclass(frozen=True)
class StripeEventReceived:
    """A Stripe event a worker took (enqueued by the ingress, catch-up or `dlq replay` as
    `{"event": <event>, "received_at": <ISO-8601>}`), parsed and checked by the actor
    (handlers/stripe_event.py:parse) before it reaches the bus."""

    event: StripeEvent


@dataclass(frozen=True)
class CommandReceived:
    """A CloudEvents command envelope from `billing.commands` (handed over by the bridge)."""

    envelope: dict[str, Any]


@dataclass(frozen=True)
class ReconcileRequested:
    """Re-read one tenant from Stripe and repair drift (the scheduler's or an operator's); a dry
    run reports the drift and writes nothing."""

    tenant_id: str
    cause: str
    dry_run: bool = False


# -- the scheduler's jobs (also run from the command line: ops/jobs.py) -------------------------


@dataclass(frozen=True)
class CatchUpDue:
    """Enqueue the Stripe events created since the newest one seen that are not in the ledger."""


@dataclass(frozen=True)
class SweepDue:
    """Reconcile every tenant against a full listing of Stripe."""

    dry_run: bool = False
    allow_mass_change: bool = False


@dataclass(frozen=True)
class RefreshDue:
    """Re-derive the tenants whose entitlements may have lapsed with time alone."""

    cause: str = "schedule"


@dataclass(frozen=True)
class InboxRepairDue:
    """Send again (or fail) the commands without an outcome for longer than `older_than_s`."""

    older_than_s: float


@dataclass(frozen=True)
class MeterFlushDue:
    """Send the closed usage windows to Stripe as meter events (handlers/metering.py)."""


@dataclass(frozen=True)
class MessageFailed:
    """A worker message failed for good (retries exhausted, or a permanent error): keep it as a
    dead letter. `body` is `{"args": [...], "kwargs": {...}}`, what `dlq replay` sends again."""

    source: str  # the actor's name
    message_id: str | None
    body: str
    reason: str
    detail: str


@dataclass(frozen=True)
class CommandFailed:
    """`apply_command` failed for good: the command's one billing.command.failed, its dead letter,
    then its tenant's next command. `envelope` is what the actor was given (maybe not a command)."""

    envelope: object
    failure: MessageFailed
