"""The subscription commands: change (price and/or seats), cancel and resume, each deciding
from a fresh read of Stripe and writing through `write_to_subscription`, so that a subscription
staff changed meanwhile makes the command decide again (see handlers/commands.py for the
exactly-once rules every command follows)."""
from __future__ import annotations

from typing import Any

from ..bms.port import BillingGateway, SubscriptionView
from ..config.catalog import Catalog
from ..contract.commands import Command, SubscriptionCancel, SubscriptionChange, SubscriptionResume
from ..errors import InvalidMessage, UnknownTenant
from ..models import Tenant, UnitOfWork
from .command_keys import step_key
from .command_queries import live_subscription, plan_item, plan_price_id, require_customer_id, resolve_plan
from .stripe_writes import start_subscription_once, write_to_subscription


def subscription_change(cmd: Command[SubscriptionChange], tenant: Tenant, uow: UnitOfWork, *, gateway: BillingGateway,
                        catalog: Catalog) -> dict[str, Any]:
    """Price and/or seats; a canceling subscription is resumed, an ended one replaced."""
    data = cmd.data
    customer_id = require_customer_id(tenant, gateway)
    plan = resolve_plan(catalog, data.plan) if data.plan else None
    if plan is not None and plan.price is None:
        raise InvalidMessage(f"plan {plan.key!r} has no subscription; send billing.subscription.cancel instead")
    price_id = plan_price_id(gateway, plan) if plan else None

    subs = gateway.subscriptions_newest_first(customer_id)
    sub = next((s for s in subs if not s.ended), None)
    if sub is None:  # every one of `subs` has ended
        return _replace_subscription(cmd, gateway, catalog, tenant, customer_id, subs, price_id, data.seats)

    item = plan_item(catalog, sub)
    new_price = price_id if price_id and item.price_id != price_id else None
    new_quantity = data.seats if data.seats and item.quantity != data.seats else None
    result = {"stripe_customer_id": customer_id, "subscription_id": sub.id}
    if new_price is None and new_quantity is None and not sub.cancel_scheduled:
        return {**result, "changed": False}  # already as asked (or applied by an earlier attempt of this command)
    updated = write_to_subscription(gateway, sub, lambda: gateway.change_plan(
        sub, item, price_id=new_price, quantity=new_quantity, unschedule_cancel=True,
        idempotency_key=step_key(cmd, f"subscription_update:{sub.id}"), proration_date=data.proration_date))
    return {**result, "changed": True, "subscription_status": updated.status}


def subscription_cancel(cmd: Command[SubscriptionCancel], tenant: Tenant, uow: UnitOfWork, *,
                        gateway: BillingGateway) -> dict[str, Any]:
    """Cancel the live subscription now, or at the end of its period (the default)."""
    data = cmd.data
    customer_id = require_customer_id(tenant, gateway)
    sub = live_subscription(gateway, customer_id)
    result: dict[str, Any] = {"stripe_customer_id": customer_id, "at_period_end": data.at_period_end}
    if sub is None:  # nothing live (or an earlier attempt already canceled it now)
        return {**result, "subscription_id": None, "detail": "no live subscription"}
    result["subscription_id"] = sub.id
    if not data.at_period_end:
        canceled = write_to_subscription(gateway, sub, lambda: gateway.cancel_now(
            sub, idempotency_key=step_key(cmd, f"cancel:{sub.id}")))
        return {**result, "subscription_status": canceled.status}
    if sub.cancel_at_period_end:
        return {**result, "changed": False}
    write_to_subscription(gateway, sub, lambda: gateway.schedule_cancel(
        sub, idempotency_key=step_key(cmd, f"cancel_at_period_end:{sub.id}")))
    return {**result, "changed": True}


def subscription_resume(cmd: Command[SubscriptionResume], tenant: Tenant, uow: UnitOfWork, *,
                        gateway: BillingGateway) -> dict[str, Any]:
    """Remove a scheduled cancellation; with none scheduled the command is `invalid` (nothing to
    resume). An ended subscription cannot be resumed (use change).

    Caveat: a retry of a resume whose Stripe write landed but whose outcome did not commit (the
    database went away in between) finds nothing to resume and ends `invalid`, though the
    subscription is as asked.
    """
    customer_id = require_customer_id(tenant, gateway)
    sub = live_subscription(gateway, customer_id)
    if sub is None:
        raise InvalidMessage("no live subscription to resume; send billing.subscription.change to start a new one")
    if not sub.cancel_scheduled:
        raise InvalidMessage(f"nothing to resume: subscription {sub.id} has no scheduled cancellation")
    gateway.unschedule_cancel(sub, idempotency_key=step_key(cmd, "resume"))
    return {"stripe_customer_id": customer_id, "subscription_id": sub.id, "changed": True}


def _replace_subscription(cmd: Command[Any], gateway: BillingGateway, catalog: Catalog, tenant: Tenant, customer_id: str,
                          ended: list[SubscriptionView], price_id: str | None, seats: int | None) -> dict[str, Any]:
    """No live subscription: start a new one, on the asked plan or else the last one's.
    `ended` is every subscription the customer had, newest first."""
    previous = plan_item(catalog, ended[0]) if ended else None
    if price_id is None:
        default = catalog.plans[catalog.default_plan]
        price_id = previous.price_id if previous else plan_price_id(gateway, default)
    if seats is None:
        seats = (previous.quantity if previous else None) or 1
    customer = gateway.customer(customer_id)
    if customer is None:
        raise UnknownTenant(f"the Stripe customer {customer_id} of tenant {tenant.id!r} is gone")
    sub = start_subscription_once(cmd, gateway, customer, tenant.id, price_id, seats, trial_days=None)
    return {"stripe_customer_id": customer_id, "subscription_id": sub.id, "subscription_status": sub.status,
            "replaced": ended[0].id if ended else None, "changed": True}
