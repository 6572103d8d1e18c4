"""The Stripe writes the product commands share, each safe to repeat: a customer created once
(the self-serve sessions use it too), a subscription started once, and a write decided on a fresh
read that, when Stripe refuses it because the subscription moved meanwhile, makes the command
decide again (`StateMoved`). The keys come from `handlers/command_keys.py`."""
from __future__ import annotations

from typing import Any, Callable

import structlog

from ..bms.port import BillingGateway, CustomerView, SubscriptionView
from ..contract.commands import Command
from ..errors import PaymentFailed, PermanentError, StateMoved
from ..models import Tenant, UnitOfWork
from .command_keys import step_key

log = structlog.get_logger(__name__)


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


def start_subscription_once(cmd: Command[Any], gateway: BillingGateway, customer: CustomerView, tenant_id: str,
                            price_id: str, seats: int, *, trial_days: int | None,
                            confirm_in_app: bool = False) -> SubscriptionView:
    """A new subscription on the price, once (keyed by the command); without a payment method
    only with a trial (else `payment_required`), or with `confirm_in_app`: then nothing is charged
    and the subscription stays `incomplete` until the customer confirms its first payment."""
    in_app = confirm_in_app and not trial_days  # a trial has nothing to pay now
    if not customer.has_payment_method and not trial_days and not in_app:
        raise PaymentFailed("the customer has no payment method and the plan starts without a trial",
                            reason="payment_required")
    # With a payment method charged now, a declined first payment fails the command
    # (card_declined) instead of leaving an `incomplete` subscription behind.
    sub = gateway.start_subscription(customer.id, tenant_id=tenant_id, price_id=price_id, quantity=seats,
                                     trial_days=trial_days, fail_if_payment_fails=customer.has_payment_method,
                                     confirm_in_app=in_app, idempotency_key=step_key(cmd, "subscription"))
    log.info("command.subscription_created", command_id=cmd.id, tenant_id=tenant_id, subscription_id=sub.id)
    return sub
