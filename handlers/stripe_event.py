"""The common path of every Stripe event handler.

    parse → find the tenant → lock it → ledger check → re-read from Stripe → apply →
    refresh entitlements → record in the ledger → commit

The handlers (customers, subscriptions, invoices, active entitlements) differ only in what
they re-read; they pass that as `sync(uow, tenant)`. Event families that are not about one
tenant (products and prices) use `parse`, `record_ignored` and the ledger directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import structlog
from sqlalchemy.exc import IntegrityError

from ..contract.stripe_event import event_problem
from ..errors import InvalidMessage
from ..models import Tenant, UnitOfWork, database_errors_are_transient
from .entitlements import refresh_entitlements
from .stripe_state import apply_customer, tenant_id_of

log = structlog.get_logger(__name__)

KIND = "stripe_event"


@dataclass(frozen=True)
class StripeEvent:
    id: str
    type: str
    object: dict
    created: int | None
    received_at: datetime
    # A copy read from Stripe at or after this moment surely reflects the event:
    # `received_at` plus the allowed clock skew (see `fresh_after`).
    fresh_after: datetime

    def fresh(self, synced_at: datetime | None) -> bool:
        """True when our copy was read from Stripe after this event reached us: the change the
        event announces is already in it, so reading again would add nothing.

        `synced_at` is stamped *before* the read began (stripe_state), by a worker's clock;
        `received_at` by the ingress's. The margin makes the comparison safe while those clocks
        differ by less than `clock_skew_margin_s`; a larger skew can make an event look fresh
        when it is not (its change then waits for the next event or the sweep)."""
        return synced_at is not None and synced_at >= self.fresh_after


def fresh_after(received_at: datetime, ctx) -> datetime:
    """The moment from which a read from Stripe surely happened after `received_at`."""
    return received_at + timedelta(seconds=ctx.settings.clock_skew_margin_s)


def parse_time(value: str | None, default: datetime) -> datetime:
    if not value:
        return default
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def checked_event(message: object) -> dict:
    """The Stripe event in a worker message, once it passed `contract.stripe_event`; raises
    InvalidMessage (a permanent failure: one dead letter, no retry) when it is unusable.

    Events reach the worker from the ingress, the scheduler's catch-up and `dlq replay`, so the
    check runs here whatever the path; the message says which field, never its value.
    """
    event = message.get("event") if isinstance(message, dict) else None
    problem = event_problem(event)
    if problem is not None:
        raise InvalidMessage(f"not a Stripe event: {problem}")
    return event


def parse(message: dict, ctx) -> StripeEvent:
    event = checked_event(message)
    received_at = message.get("received_at")
    try:
        if received_at is not None and not isinstance(received_at, str):
            raise TypeError("received_at is not a string")
        received_at = parse_time(received_at, ctx.now())
    except (TypeError, ValueError) as exc:
        raise InvalidMessage(f"bad received_at in {event['id']}") from exc
    return StripeEvent(id=event["id"], type=event["type"], object=event["data"]["object"],
                       created=event.get("created"), received_at=received_at,
                       fresh_after=fresh_after(received_at, ctx))


def record_ignored(ctx, event: StripeEvent, reason: str, tenant_id: str | None = None) -> str:
    """Ledger an event we do not act on, so a redelivery is a visible duplicate, not new work."""
    with ctx.uow() as uow:
        if uow.already_processed(event.id):
            return "duplicate"
        uow.record_processed(event.id, kind=KIND, type=event.type, tenant_id=tenant_id, outcome="ignored",
                             reason=reason)
        if not commit_ledger(uow):
            return "duplicate"
    log.info("stripe_event.ignored", event_id=event.id, type=event.type, reason=reason)
    return "ignored"


def commit_ledger(uow: UnitOfWork) -> bool:
    """Commit; False when a concurrent delivery of the same event committed first."""
    try:
        uow.commit()
    except IntegrityError:
        uow.rollback()
        return False
    return True


@dataclass
class Resolved:
    tenant_id: str | None
    # The customer, when resolving had to read it from Stripe. Never None once a tenant was
    # found that way: the tenant id came from this very customer's metadata.
    customer: dict | None = None
    read_at: datetime | None = None  # when `customer` was read (stamped before the read)


def resolve_tenant(uow: UnitOfWork, ctx, customer_id: str, hint: dict | None = None) -> Resolved:
    """Which tenant a customer belongs to: our mapping, else the payload's metadata `tenant_id`
    (an identity we wrote; it does not go stale), else the customer read from Stripe."""
    tenant = uow.tenant_by_customer(customer_id)
    if tenant is not None:
        return Resolved(tenant.id)
    hinted = tenant_id_of(hint)
    if hinted:
        return Resolved(hinted)
    read_at = ctx.now()
    customer = ctx.bms.retrieve_customer(customer_id)
    return Resolved(tenant_id_of(customer), customer, read_at)


SyncFn = Callable[[UnitOfWork, Tenant], str | None]


def handle_for_customer(ctx, event: StripeEvent, customer_id: str | None, sync: SyncFn,
                        hint: dict | None = None) -> str:
    """Run `sync` for the tenant that owns `customer_id`, under that tenant's lock, exactly once."""
    if not customer_id:
        return record_ignored(ctx, event, "no_customer")
    with database_errors_are_transient(), ctx.uow() as uow:
        if uow.already_processed(event.id):  # cheap early exit; checked again under the lock
            return "duplicate"
        resolved = resolve_tenant(uow, ctx, customer_id, hint)
        if resolved.tenant_id is None:
            uow.rollback()
            return record_ignored(ctx, event, "no_tenant")
        tenant = uow.lock_tenant(resolved.tenant_id)
        if uow.already_processed(event.id):
            return "duplicate"
        if tenant.stripe_customer_id is None:
            # First sight of this customer for the tenant (made in the dashboard, or the
            # customer event is still on its way): map it now.
            customer, read_at = resolved.customer, resolved.read_at
            if customer is None:
                read_at = ctx.now()  # stamped before the read (see StripeEvent.fresh)
                customer = ctx.bms.retrieve_customer(customer_id)
            if customer is None:
                uow.rollback()
                return record_ignored(ctx, event, "customer_gone", resolved.tenant_id)
            apply_customer(uow.session, tenant, customer_id, customer, read_at)
        elif tenant.stripe_customer_id != customer_id:
            log.warning("stripe_event.other_customer", event_id=event.id, tenant_id=tenant.id,
                        customer=customer_id, tenant_customer=tenant.stripe_customer_id)
            uow.rollback()
            return record_ignored(ctx, event, "not_tenant_customer", resolved.tenant_id)
        outcome = sync(uow, tenant) or "applied"
        changed = refresh_entitlements(uow, tenant, ctx, cause=event.id)
        uow.record_processed(event.id, kind=KIND, type=event.type, tenant_id=tenant.id, outcome=outcome)
        if not commit_ledger(uow):
            return "duplicate"
    log.info("stripe_event.processed", event_id=event.id, type=event.type, tenant_id=resolved.tenant_id,
             outcome=outcome, entitlements_changed=changed)
    return outcome
