"""Product commands applied to Stripe: one plain function per command type.

`command_dispatch.handle_command` validates the command, locks the tenant, checks the ledger and
then calls `handler(cmd, tenant, uow, ctx)`, which does the Stripe work and returns the details
for the `billing.command.completed` event; the dispatcher records the ledger row and the outcome
in the same transaction. A handler raises a `PermanentError` (→ `billing.command.failed` with its
`reason`) or lets a `TransientError` through (→ the worker retries the whole command).

Exactly once in Stripe, despite retries at any point:

- every Stripe write carries the idempotency key `"{command id}:{step}"`, and its parameters
  depend only on the command and on Stripe state that the step itself does not change, so a
  retried step repeats the same request and Stripe replays the first answer;
- before creating anything the handler looks for what an earlier attempt (or support staff)
  already made: the tenant's customer locally and by its `tenant_id` metadata in Stripe, the
  customer's live subscription; a change already in place is not sent again.

Racing the dashboard: each command decides from a fresh read of Stripe, and when Stripe refuses
a write because what it was decided on changed meanwhile (staff canceled the subscription a
moment ago), the handler raises `StateMoved` and the dispatcher runs it again, so it decides
anew: a cancel finds the goal reached, a change replaces the ended subscription. A write whose
parameters depend on the decision has the decision in its key (`step_key(..., params)`).

Who owns what: the tenant's identity (name, email, Stripe customer id) is written locally here;
billing state (plan, status, seats, periods) is not — it comes back through the webhook path like
any dashboard change. The one exception is the usage counter, which only commands feed.
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable

import structlog

from ..bms.gateway import NotFound
from ..config.catalog import Plan
from ..errors import InvalidMessage, PaymentFailed, PermanentError, StateMoved, UnknownPlan, UnknownTenant
from ..models import Tenant, UnitOfWork
from .command_schema import (Command, SubscriptionCancel, SubscriptionChange, TenantProvisioned, TenantUpdated,
                             UsageRecorded)
from .stripe_state import id_of
from .usage import add_usage

log = structlog.get_logger(__name__)

# A subscription in one of these states is over; anything else is the tenant's live subscription.
ENDED = ("canceled", "incomplete_expired")


# -- the commands -------------------------------------------------------------------------------

def tenant_provisioned(cmd: Command, tenant: Tenant, uow: UnitOfWork, ctx) -> dict:
    """A customer with metadata `tenant_id` and a subscription on the requested plan, once."""
    data: TenantProvisioned = cmd.data  # type: ignore[assignment]
    plan = resolve_plan(ctx, data.plan or ctx.catalog.default_plan)
    price_id = plan_price_id(ctx, plan) if plan.price else None  # checked before anything is created
    tenant.name, tenant.email, tenant.deleted = data.name, data.email, False

    customer = find_customer(tenant, ctx)
    if customer is None:
        customer = _create_customer(cmd, data, tenant, uow, ctx)
    tenant.stripe_customer_id = customer["id"]
    result: dict = {"stripe_customer_id": customer["id"], "plan": plan.key}
    if customer.get("test_clock"):
        result["test_clock"] = id_of(customer["test_clock"])
    if price_id is None:  # the free plan: a customer, no subscription
        result["subscription_id"] = None
        return result

    sub = live_subscription(ctx, customer["id"])
    if sub is None:
        sub = _create_subscription(cmd, ctx, customer, tenant.id, price_id, data.seats or 1,
                                   trial_days=data.trial_days)
    result.update(subscription_id=sub["id"], subscription_status=sub["status"])
    return result


def tenant_updated(cmd: Command, tenant: Tenant, uow: UnitOfWork, ctx) -> dict:
    """The customer's name, email and/or address changed in Stripe (and the name/email locally)."""
    data: TenantUpdated = cmd.data  # type: ignore[assignment]
    customer_id = require_customer_id(tenant, ctx)
    params: dict = {}
    if data.name is not None:
        params["name"] = tenant.name = data.name
    if data.email is not None:
        params["email"] = tenant.email = data.email
    if data.address is not None:
        params["address"] = data.address.model_dump(exclude_none=True)
    if params:
        try:
            ctx.bms.update_customer(customer_id, params, idempotency_key=step_key(cmd, "customer"))
        except NotFound as exc:  # deleted in Stripe since we linked it
            raise UnknownTenant(f"the Stripe customer {customer_id} of tenant {tenant.id!r} is gone") from exc
    return {"stripe_customer_id": customer_id, "changed": sorted(params)}


def subscription_change(cmd: Command, tenant: Tenant, uow: UnitOfWork, ctx) -> dict:
    """Price and/or seats; a canceling subscription is resumed, an ended one replaced."""
    data: SubscriptionChange = cmd.data  # type: ignore[assignment]
    customer_id = require_customer_id(tenant, ctx)
    plan = resolve_plan(ctx, data.plan) if data.plan else None
    if plan is not None and plan.price is None:
        raise InvalidMessage(f"plan {plan.key!r} has no subscription; send billing.subscription.cancel instead")
    price_id = plan_price_id(ctx, plan) if plan else None

    subs = subscriptions_newest_first(ctx, customer_id)
    sub = next(iter(_live(subs)), None)
    if sub is None:  # every one of `subs` has ended
        return _replace_subscription(cmd, ctx, tenant, customer_id, subs, price_id, data.seats)

    item = plan_item(ctx, sub)
    params: dict = {}
    change: dict = {}
    if price_id and item["price"]["id"] != price_id:
        change["price"] = price_id
    if data.seats and item.get("quantity") != data.seats:
        change["quantity"] = data.seats
    if change:
        params["items"] = [{"id": item["id"], **change}]
        params["proration_behavior"] = "create_prorations"
    params.update(_resume_params(sub))
    result = {"stripe_customer_id": customer_id, "subscription_id": sub["id"]}
    if not params:  # already as asked (or applied by an earlier attempt of this command)
        return {**result, "changed": False}
    updated = write_to_subscription(ctx, sub, lambda: ctx.bms.update_subscription(
        sub["id"], params, idempotency_key=step_key(cmd, f"subscription_update:{sub['id']}", params)))
    return {**result, "changed": True, "subscription_status": updated.get("status")}


def subscription_cancel(cmd: Command, tenant: Tenant, uow: UnitOfWork, ctx) -> dict:
    """Cancel the live subscription now, or at the end of its period (the default)."""
    data: SubscriptionCancel = cmd.data  # type: ignore[assignment]
    customer_id = require_customer_id(tenant, ctx)
    sub = live_subscription(ctx, customer_id)
    result: dict = {"stripe_customer_id": customer_id, "at_period_end": data.at_period_end}
    if sub is None:  # nothing live (or an earlier attempt already canceled it now)
        return {**result, "subscription_id": None, "detail": "no live subscription"}
    result["subscription_id"] = sub["id"]
    if not data.at_period_end:
        canceled = write_to_subscription(ctx, sub, lambda: ctx.bms.cancel_subscription(
            sub["id"], idempotency_key=step_key(cmd, f"cancel:{sub['id']}")))
        return {**result, "subscription_status": canceled.get("status")}
    if sub.get("cancel_at_period_end"):
        return {**result, "changed": False}
    write_to_subscription(ctx, sub, lambda: ctx.bms.update_subscription(
        sub["id"], {"cancel_at_period_end": True}, idempotency_key=step_key(cmd, f"cancel_at_period_end:{sub['id']}")))
    return {**result, "changed": True}


def subscription_resume(cmd: Command, tenant: Tenant, uow: UnitOfWork, ctx) -> dict:
    """Remove a scheduled cancellation. An ended subscription cannot be resumed (use change)."""
    customer_id = require_customer_id(tenant, ctx)
    sub = live_subscription(ctx, customer_id)
    if sub is None:
        raise InvalidMessage("no live subscription to resume; send billing.subscription.change to start a new one")
    result = {"stripe_customer_id": customer_id, "subscription_id": sub["id"]}
    params = _resume_params(sub)
    if not params:
        return {**result, "changed": False}
    ctx.bms.update_subscription(sub["id"], params, idempotency_key=step_key(cmd, "resume"))
    return {**result, "changed": True}


def tenant_deleted(cmd: Command, tenant: Tenant, uow: UnitOfWork, ctx) -> dict:
    """Every live subscription canceled now; the customer stays in Stripe for its invoices."""
    tenant.deleted = True
    customer_id = customer_id_for(tenant, ctx)
    if customer_id is None:
        return {"stripe_customer_id": None, "canceled": []}
    canceled = []
    for sub in live_subscriptions(ctx, customer_id):
        write_to_subscription(ctx, sub, lambda: ctx.bms.cancel_subscription(
            sub["id"], idempotency_key=step_key(cmd, f"cancel:{sub['id']}")))
        canceled.append(sub["id"])
    return {"stripe_customer_id": customer_id, "canceled": canceled}


def usage_recorded(cmd: Command, tenant: Tenant, uow: UnitOfWork, ctx) -> dict:
    """A Stripe meter event (deduplicated by Stripe on the command id) and the local counter."""
    data: UsageRecorded = cmd.data  # type: ignore[assignment]
    meter = ctx.catalog.meters.get(data.meter)
    if meter is None:
        raise InvalidMessage(f"unknown meter {data.meter!r}")
    at = data.timestamp or cmd.time
    if at is None:  # a default of "now" would differ between retries, and so would the request
        raise InvalidMessage("usage needs data.timestamp or the envelope's time")
    customer_id = require_customer_id(tenant, ctx)
    ctx.bms.create_meter_event({
        "event_name": meter.event_name,
        "payload": {"stripe_customer_id": customer_id, "value": str(data.quantity)},
        "identifier": meter_identifier(cmd.id),
        "timestamp": int(at.timestamp()),
    }, idempotency_key=step_key(cmd, "meter_event"))
    used = add_usage(uow.session, tenant.id, data.meter, data.quantity, at)
    return {"stripe_customer_id": customer_id, "meter": data.meter, "quantity": data.quantity, "used": used}


# -- shared steps -------------------------------------------------------------------------------

def step_key(cmd: Command, step: str, params: dict | None = None) -> str:
    """The idempotency key of one Stripe write of one command. With `params` (a write whose
    parameters come from a decision on Stripe's state) it names that decision too: deciding
    again after the state moved sends a new request, not the old key with new parameters."""
    if params is None:
        return f"{cmd.id}:{step}"
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{cmd.id}:{step}:{digest}"


def write_to_subscription(ctx, sub: dict, write: Callable[[], dict]) -> dict:
    """Make a write that was decided on `sub` (a fresh read). When Stripe refuses it, read the
    subscription again: if it ended, went away or changed in between (staff in the dashboard),
    raise `StateMoved` so that the command decides again; otherwise Stripe's refusal stands."""
    try:
        return write()
    except PaymentFailed:
        raise
    except PermanentError as exc:  # NotFound, or 400 "a canceled subscription can only update …"
        now = ctx.bms.retrieve_subscription(sub["id"])
        if now is None or _decision_basis(now) != _decision_basis(sub):
            raise StateMoved(f"subscription {sub['id']} changed in Stripe meanwhile ({exc})") from exc
        raise


def _decision_basis(sub: dict) -> tuple:
    """What the subscription commands decide on."""
    items = tuple((i["id"], i["price"]["id"], i.get("quantity")) for i in sub["items"]["data"])
    return (sub["status"], bool(sub.get("cancel_at_period_end")), sub.get("cancel_at"), items)


def meter_identifier(command_id: str) -> str:
    """Stripe meter event identifiers are at most 100 characters; longer command ids are hashed."""
    return command_id if len(command_id) <= 100 else "cmd-" + hashlib.sha256(command_id.encode()).hexdigest()


def resolve_plan(ctx, name: str) -> Plan:
    """A catalog plan by key (`pro`) or by its price's lookup_key (`pro_monthly`)."""
    plan = ctx.catalog.plans.get(name) or ctx.catalog.plan_for_lookup_key(name)
    if plan is None:
        raise UnknownPlan(f"no plan {name!r} in the catalog")
    return plan


def plan_price_id(ctx, plan: Plan) -> str:
    price = ctx.bms.find_price_by_lookup_key(plan.price.lookup_key)
    if price is None:
        raise UnknownPlan(f"no active Stripe price with lookup_key {plan.price.lookup_key!r} (plan {plan.key!r})")
    return price["id"]


def find_customer(tenant: Tenant, ctx) -> dict | None:
    """The tenant's live Stripe customer: the one we know, else one tagged with its tenant_id
    (made by an earlier attempt of a command, or by staff), which is then remembered."""
    if tenant.stripe_customer_id:
        customer = ctx.bms.retrieve_customer(tenant.stripe_customer_id)
        if customer is not None:
            return customer
    return _find_tagged_customer(tenant, ctx)


def customer_id_for(tenant: Tenant, ctx) -> str | None:
    """Like `find_customer` but without a Stripe read when the id is known locally."""
    if tenant.stripe_customer_id:
        return tenant.stripe_customer_id
    customer = _find_tagged_customer(tenant, ctx)
    return customer["id"] if customer is not None else None


def _find_tagged_customer(tenant: Tenant, ctx) -> dict | None:
    """The customer whose metadata `tenant_id` names the tenant; remembered when found."""
    customer = ctx.bms.find_customer_for_tenant(tenant.id)
    if customer is not None:
        tenant.stripe_customer_id = customer["id"]
    return customer


def require_customer_id(tenant: Tenant, ctx) -> str:
    if tenant.deleted:
        raise UnknownTenant(f"tenant {tenant.id!r} was deleted")
    customer_id = customer_id_for(tenant, ctx)
    if customer_id is None:
        raise UnknownTenant(f"tenant {tenant.id!r} has no Stripe customer; send billing.tenant.provisioned first")
    return customer_id


def subscriptions_newest_first(ctx, customer_id: str) -> list[dict]:
    """Every subscription of the customer, ended ones included."""
    subs = ctx.bms.list_subscriptions(customer=customer_id, status="all")
    return sorted(subs, key=lambda s: s.get("created") or 0, reverse=True)


def live_subscriptions(ctx, customer_id: str) -> list[dict]:
    return _live(subscriptions_newest_first(ctx, customer_id))


def live_subscription(ctx, customer_id: str) -> dict | None:
    """The tenant's current subscription (the newest one that has not ended)."""
    return next(iter(live_subscriptions(ctx, customer_id)), None)


def _live(subs: list[dict]) -> list[dict]:
    return [s for s in subs if s["status"] not in ENDED]


def plan_item(ctx, sub: dict) -> dict:
    """The item that carries the plan and the seats: the first whose price is in the catalog,
    else the first licensed (not metered) one."""
    items = sub["items"]["data"]
    for item in items:
        if ctx.catalog.plan_for_lookup_key(item["price"].get("lookup_key")):
            return item
    for item in items:
        if ((item["price"].get("recurring") or {}).get("usage_type")) != "metered":
            return item
    return items[0]


def has_payment_method(customer: dict) -> bool:
    return bool((customer.get("invoice_settings") or {}).get("default_payment_method") or customer.get("default_source"))


def _resume_params(sub: dict) -> dict:
    if sub.get("cancel_at_period_end"):
        return {"cancel_at_period_end": False}
    if sub.get("cancel_at"):
        return {"cancel_at": ""}  # Stripe unsets a field given the empty string
    return {}


def _create_customer(cmd: Command, data: TenantProvisioned, tenant: Tenant, uow: UnitOfWork, ctx) -> dict:
    """The tenant's customer, created once even when Stripe's search lags behind: the request is
    recorded (tenant.pending_customer, committed) before it is sent, and a later command that
    finds no customer sends that same request with its key again, which Stripe answers with the
    customer made the first time (keys last 24 h; search catches up within a minute)."""
    pending = tenant.pending_customer
    if pending:
        log.info("command.customer_creation_replayed", command_id=cmd.id, tenant_id=cmd.tenant_id)
        try:
            customer = ctx.bms.create_customer(pending["params"], idempotency_key=pending["idempotency_key"])
        except PermanentError:  # Stripe refused that request (a declined card): it made nothing
            customer = None
        tenant.pending_customer = None
        if customer is not None:
            return customer
    key, params = step_key(cmd, "customer"), _customer_params(cmd, data, ctx)
    tenant.pending_customer = {"idempotency_key": key, "params": params}
    uow.checkpoint(tenant.id)
    try:
        customer = ctx.bms.create_customer(params, idempotency_key=key)
    finally:  # a transient failure rolls this back to the checkpoint: the record stays
        tenant.pending_customer = None
    log.info("command.customer_created", command_id=cmd.id, tenant_id=cmd.tenant_id, customer_id=customer["id"])
    return customer


def _customer_params(cmd: Command, data: TenantProvisioned, ctx) -> dict:
    params: dict = {"name": data.name, "email": data.email, "metadata": {"tenant_id": cmd.tenant_id}}
    if data.payment_method:
        params["payment_method"] = data.payment_method
        params["invoice_settings"] = {"default_payment_method": data.payment_method}
    if ctx.settings.stripe_test_clocks:
        # Frozen at the command's own time, not "now": a retried step must repeat its request.
        frozen = cmd.time or ctx.now()
        clock = ctx.bms.create_test_clock(int(frozen.timestamp()), f"tenant {cmd.tenant_id}",
                                          idempotency_key=step_key(cmd, "test_clock"))
        params["test_clock"] = clock["id"]
    return params


def _create_subscription(cmd: Command, ctx, customer: dict, tenant_id: str, price_id: str, seats: int, *,
                         trial_days: int | None) -> dict:
    params: dict = {
        "customer": customer["id"],
        "items": [{"price": price_id, "quantity": seats}],
        "metadata": {"tenant_id": tenant_id},
    }
    if trial_days:
        params["trial_period_days"] = trial_days
    if has_payment_method(customer):
        # A declined first payment fails the command (card_declined) instead of leaving an
        # `incomplete` subscription behind.
        params["payment_behavior"] = "error_if_incomplete"
    elif not trial_days:
        raise PaymentFailed("the customer has no payment method and the plan starts without a trial",
                            reason="payment_required")
    sub = ctx.bms.create_subscription(params, idempotency_key=step_key(cmd, "subscription"))
    log.info("command.subscription_created", command_id=cmd.id, tenant_id=tenant_id, subscription_id=sub["id"])
    return sub


def _replace_subscription(cmd: Command, ctx, tenant: Tenant, customer_id: str, ended: list[dict],
                          price_id: str | None, seats: int | None) -> dict:
    """No live subscription: start a new one, on the asked plan or else the last one's.
    `ended` is every subscription the customer had, newest first."""
    previous = plan_item(ctx, ended[0]) if ended else None
    if price_id is None:
        price_id = previous["price"]["id"] if previous else plan_price_id(ctx, ctx.catalog.plans[ctx.catalog.default_plan])
    if seats is None:
        seats = (previous or {}).get("quantity") or 1
    customer = ctx.bms.retrieve_customer(customer_id)
    if customer is None:
        raise UnknownTenant(f"the Stripe customer {customer_id} of tenant {tenant.id!r} is gone")
    sub = _create_subscription(cmd, ctx, customer, tenant.id, price_id, seats, trial_days=None)
    return {"stripe_customer_id": customer_id, "subscription_id": sub["id"], "subscription_status": sub["status"],
            "replaced": ended[0]["id"] if ended else None, "changed": True}

