"""Product commands applied to Stripe: one plain function per command type.

`command_dispatch.handle_command` validates the command, locks the tenant, checks the ledger and
then calls `handler(cmd, tenant, uow)` (its other dependencies injected by the bus), which does
the Stripe work and returns the details for the `billing.command.completed` event; the
dispatcher records the ledger row and the outcome in the same transaction. A handler raises a `PermanentError` (→ `billing.command.failed` with its
`reason`) or lets a `TransientError` through (→ the worker retries the whole command).

Exactly once in Stripe, despite retries at any point:

- every Stripe write carries an idempotency key of the command and its step
  (`handlers/command_keys.py`), so a retried step repeats the same request and Stripe replays
  the first answer;
- before creating anything the handler looks for what an earlier attempt (or support staff)
  already made: the tenant's customer locally and by its `tenant_id` metadata in Stripe, the
  customer's live subscription; a change already in place is not sent again.

Racing the dashboard: each command decides from a fresh read of Stripe, and when Stripe refuses
a write because what it was decided on changed meanwhile (staff canceled the subscription a
moment ago), the handler raises `StateMoved` and the dispatcher runs it again, so it decides
anew: a cancel finds the goal reached, a change replaces the ended subscription. A write whose
parameters depend on the decision has the decision in its key.

What a command reads to decide (plan, price, customer, live subscription) is in
`handlers/command_queries.py`; the Stripe requests themselves are built by the gateway
(`bms/requests.py`), never here.

Who owns what: the tenant's identity (name, email, Stripe customer id) is written locally here;
billing state (plan, status, seats, periods) is not — it comes back through the webhook path like
any dashboard change. The one exception is the usage counter, which commands feed too.
"""
from __future__ import annotations

from typing import Any, Callable

import structlog

from ..bms.port import BillingGateway, CustomerView, SubscriptionView
from ..config.catalog import Catalog
from ..config.settings import Settings
from ..errors import InvalidMessage, NotFound, PaymentFailed, PermanentError, StateMoved, UnknownTenant
from ..models import Tenant, UnitOfWork
from .command_keys import step_key
from .command_queries import (customer_id_for, find_customer, live_subscription, plan_item, plan_price_id,
                              require_customer_id, resolve_plan)
from ..contract.commands import (Command, SubscriptionCancel, SubscriptionChange, SubscriptionResume, TenantDeleted,
                                 TenantProvisioned, TenantUpdated, UsageRecorded)
from .dependencies import Clock
from .quota import feature_limit, record

log = structlog.get_logger(__name__)


# -- the commands -------------------------------------------------------------------------------

def tenant_provisioned(cmd: Command[TenantProvisioned], tenant: Tenant, uow: UnitOfWork, *,
                       gateway: BillingGateway, catalog: Catalog, settings: Settings, now: Clock) -> dict[str, Any]:
    """A customer with metadata `tenant_id` and a subscription on the requested plan, once."""
    data = cmd.data
    plan = resolve_plan(catalog, data.plan or catalog.default_plan)
    price_id = plan_price_id(gateway, plan) if plan.price else None  # checked before anything is created
    tenant.name, tenant.email, tenant.deleted = data.name, data.email, False

    customer = find_customer(tenant, gateway)
    if customer is None:
        customer = _create_customer(cmd, data, tenant, uow, gateway=gateway, settings=settings, now=now)
    tenant.stripe_customer_id = customer.id
    result: dict[str, Any] = {"stripe_customer_id": customer.id, "plan": plan.key}
    if customer.test_clock:
        result["test_clock"] = customer.test_clock
    if price_id is None:  # the free plan: a customer, no subscription
        result["subscription_id"] = None
        return result

    sub = live_subscription(gateway, customer.id)
    if sub is None:
        sub = _create_subscription(cmd, gateway, customer, tenant.id, price_id, data.seats or 1,
                                   trial_days=data.trial_days)
    result.update(subscription_id=sub.id, subscription_status=sub.status)
    return result


def tenant_updated(cmd: Command[TenantUpdated], tenant: Tenant, uow: UnitOfWork, *,
                   gateway: BillingGateway) -> dict[str, Any]:
    """The customer's name, email and/or address changed in Stripe (and the name/email locally)."""
    data = cmd.data
    customer_id = require_customer_id(tenant, gateway)
    address = data.address.model_dump(exclude_none=True) if data.address is not None else None
    changed = sorted(field for field, value in (("name", data.name), ("email", data.email), ("address", address))
                     if value is not None)
    if data.name is not None:
        tenant.name = data.name
    if data.email is not None:
        tenant.email = data.email
    try:
        gateway.update_customer_details(customer_id, name=data.name, email=data.email, address=address,
                                        idempotency_key=step_key(cmd, "customer"))
    except NotFound as exc:  # deleted in Stripe since we linked it
        raise UnknownTenant(f"the Stripe customer {customer_id} of tenant {tenant.id!r} is gone") from exc
    return {"stripe_customer_id": customer_id, "changed": changed}


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


def tenant_deleted(cmd: Command[TenantDeleted], tenant: Tenant, uow: UnitOfWork, *,
                   gateway: BillingGateway) -> dict[str, Any]:
    """Every live subscription canceled now; the customer stays in Stripe for its invoices."""
    tenant.deleted = True
    customer_id = customer_id_for(tenant, gateway)
    if customer_id is None:
        return {"stripe_customer_id": None, "canceled": []}
    canceled = []
    for sub in gateway.live_subscriptions(customer_id):
        write_to_subscription(gateway, sub, lambda: gateway.cancel_now(
            sub, idempotency_key=step_key(cmd, f"cancel:{sub.id}")))
        canceled.append(sub.id)
    return {"stripe_customer_id": customer_id, "canceled": canceled}


def usage_recorded(cmd: Command[UsageRecorded], tenant: Tenant, uow: UnitOfWork, *, gateway: BillingGateway,
                   catalog: Catalog, now: Clock) -> dict[str, Any]:
    """The local counters, through the usage endpoint's own soft consumption (handlers/quota.py);
    metering sends them to Stripe with the rest of the tenant's minute (handlers/metering.py)."""
    data = cmd.data
    if data.meter not in catalog.meters:
        raise InvalidMessage(f"unknown meter {data.meter!r}")
    at = data.timestamp or cmd.time
    if at is None:  # a default of "now" would differ between retries, and so would the request
        raise InvalidMessage("usage needs data.timestamp or the envelope's time")
    customer_id = require_customer_id(tenant, gateway)
    limit = feature_limit(uow, tenant.id, data.meter, required=False)
    used = record(uow, tenant.id, data.meter, data.quantity, at, limit, hard=False, now=now())["used"]
    return {"stripe_customer_id": customer_id, "meter": data.meter, "quantity": data.quantity, "used": used}


# -- shared steps -------------------------------------------------------------------------------

def write_to_subscription(gateway: BillingGateway, sub: SubscriptionView,
                          write: Callable[[], SubscriptionView]) -> SubscriptionView:
    """Make a write that was decided on `sub` (a fresh read). When Stripe refuses it, read the
    subscription again: if it ended, went away or changed in between (staff in the dashboard),
    raise `StateMoved` so that the command decides again; otherwise Stripe's refusal stands."""
    try:
        return write()
    except PaymentFailed:
        raise
    except PermanentError as exc:  # NotFound, or 400 "a canceled subscription can only update …"
        fresh = gateway.subscription(sub.id)
        if fresh is None or fresh.decision_basis() != sub.decision_basis():
            raise StateMoved(f"subscription {sub.id} changed in Stripe meanwhile ({exc})") from exc
        raise


def _create_customer(cmd: Command[TenantProvisioned], data: TenantProvisioned, tenant: Tenant, uow: UnitOfWork, *,
                     gateway: BillingGateway, settings: Settings, now: Clock) -> CustomerView:
    customer = create_customer_once(
        tenant, uow, gateway, key=step_key(cmd, "customer"),
        params=lambda: _customer_params(cmd, data, gateway=gateway, settings=settings, now=now))
    log.info("command.customer_created", command_id=cmd.id, tenant_id=cmd.tenant_id, customer_id=customer.id)
    return customer


def create_customer_once(tenant: Tenant, uow: UnitOfWork, gateway: BillingGateway, *, key: str,
                         params: dict[str, Any] | Callable[[], dict[str, Any]]) -> CustomerView:
    """The tenant's customer, created once even when Stripe's search lags behind: the request is
    recorded (tenant.pending_customer, committed) before it is sent, and a later command (or
    session request) that finds no customer sends that same request with its key again, which
    Stripe answers with the customer made the first time (keys last 24 h; search catches up within
    a minute). `params` may be a function: it is called only when no recorded request is replayed."""
    pending = tenant.pending_customer
    if pending:
        log.info("customer.creation_replayed", tenant_id=tenant.id)
        try:
            customer = gateway.create_customer_from(pending["params"], idempotency_key=pending["idempotency_key"])
        except PermanentError:  # Stripe refused that request (a declined card): it made nothing
            customer = None
        tenant.pending_customer = None
        if customer is not None:
            return customer
    request = params() if callable(params) else params
    tenant.pending_customer = {"idempotency_key": key, "params": request}
    uow.checkpoint(tenant.id)
    try:
        return gateway.create_customer_from(request, idempotency_key=key)
    finally:  # a transient failure rolls this back to the checkpoint: the record stays
        tenant.pending_customer = None


def _customer_params(cmd: Command[TenantProvisioned], data: TenantProvisioned, *,
                     gateway: BillingGateway, settings: Settings,
                     now: Clock) -> dict[str, Any]:
    test_clock = None
    if settings.stripe_test_clocks:
        # Frozen at the command's own time, not "now": a retried step must repeat its request.
        frozen = cmd.time or now()
        test_clock = gateway.start_test_clock(int(frozen.timestamp()), f"tenant {cmd.tenant_id}",
                                              idempotency_key=step_key(cmd, "test_clock"))
    return gateway.new_customer_request(tenant_id=cmd.tenant_id, name=data.name, email=data.email,
                                        payment_method=data.payment_method, test_clock=test_clock)


def _create_subscription(cmd: Command[Any], gateway: BillingGateway, customer: CustomerView, tenant_id: str, price_id: str,
                         seats: int, *, trial_days: int | None) -> SubscriptionView:
    if not customer.has_payment_method and not trial_days:
        raise PaymentFailed("the customer has no payment method and the plan starts without a trial",
                            reason="payment_required")
    # With a payment method, a declined first payment fails the command (card_declined) instead
    # of leaving an `incomplete` subscription behind.
    sub = gateway.start_subscription(customer.id, tenant_id=tenant_id, price_id=price_id, quantity=seats,
                                     trial_days=trial_days, fail_if_payment_fails=customer.has_payment_method,
                                     idempotency_key=step_key(cmd, "subscription"))
    log.info("command.subscription_created", command_id=cmd.id, tenant_id=tenant_id, subscription_id=sub.id)
    return sub


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
    sub = _create_subscription(cmd, gateway, customer, tenant.id, price_id, seats, trial_days=None)
    return {"stripe_customer_id": customer_id, "subscription_id": sub.id, "subscription_status": sub.status,
            "replaced": ended[0].id if ended else None, "changed": True}

