"""Product commands applied to Stripe: one plain function per command type; the tenant's commands
(provisioned, updated, deleted, usage) here, the subscription's in `handlers/subscription_commands.py`.

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
`handlers/command_queries.py`, the writes they share (a customer or subscription made once, a
write that notices the dashboard) in `handlers/stripe_writes.py`; the Stripe requests themselves
are built by the gateway (`bms/requests.py`), never here.

Who owns what: the tenant's identity (name, email, Stripe customer id) is written locally here;
billing state (plan, status, seats, periods) is not — it comes back through the webhook path like
any dashboard change. The one exception is the usage counter, which commands feed too.
"""
from __future__ import annotations

from typing import Any

import structlog

from ..bms.port import BillingGateway, CustomerView
from ..config.catalog import Catalog
from ..config.settings import Settings
from ..contract.commands import Command, TenantDeleted, TenantProvisioned, TenantUpdated, UsageRecorded
from ..errors import InvalidMessage, NotFound, UnknownTenant
from ..models import Tenant, UnitOfWork
from .billing_account import pending_payment_json
from .billing_gateway import as_pages
from .command_keys import step_key
from .command_queries import customer_id_for, find_customer, live_subscription, plan_price_id, require_customer_id, resolve_plan
from .dependencies import Clock
from .quota import feature_limit, record
from .stripe_writes import create_customer_once, start_subscription_once, write_to_subscription

log = structlog.get_logger(__name__)


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
    in_app = data.first_payment == "in_app"
    if sub is None:
        sub = start_subscription_once(cmd, gateway, customer, tenant.id, price_id, data.seats or 1,
                                      trial_days=data.trial_days, confirm_in_app=in_app)
    result.update(subscription_id=sub.id, subscription_status=sub.status)
    if in_app and sub.status == "incomplete":  # also on a retry: the same invoice, the same secret
        pending = as_pages(gateway).pending_payment(sub.id)
        result["pending_payment"] = pending_payment_json(pending) if pending is not None else None
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


def _create_customer(cmd: Command[TenantProvisioned], data: TenantProvisioned, tenant: Tenant, uow: UnitOfWork, *,
                     gateway: BillingGateway, settings: Settings, now: Clock) -> CustomerView:
    customer = create_customer_once(
        tenant, uow, gateway, key=step_key(cmd, "customer"),
        params=lambda: _customer_params(cmd, data, gateway=gateway, settings=settings, now=now))
    log.info("command.customer_created", command_id=cmd.id, tenant_id=cmd.tenant_id, customer_id=customer.id)
    return customer


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


