"""Self-serve sessions: the product asks for a Checkout, Customer Portal or SetupIntent session
for a tenant and gets its URL or client secret back in the same request (the only Stripe calls
made while a product request waits). What the customer then does comes back through webhooks.

Each request runs under the tenant's row lock. With an `Idempotency-Key` the first answer is
stored (`session_answers`, in the transaction that ends the request) and a repeat gets it back;
the Stripe writes carry `<tenant>:<endpoint>:<key>`, so a repeat after a crash between Stripe's
answer and our commit gets the same session from Stripe. The tenant's customer is the
provisioning path's: found locally or by metadata `tenant_id`, else created once through the same
pending-customer record (handlers/stripe_writes.create_customer_once).

Caveat: the lock is held across the Stripe call (tens of milliseconds), so concurrent session
requests of one tenant queue behind each other; other tenants are not affected.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from ..bms.port import BillingGateway, SubscriptionView
from ..bms.selfserve_port import SelfServeGateway
from ..config.catalog import Catalog
from ..errors import InvalidMessage, UnknownTenant
from ..models import Tenant, UnitOfWork
from .command_queries import find_customer, live_subscription, plan_item, plan_price_id, resolve_plan
from .stripe_writes import create_customer_once
from .dependencies import Clock, UowFactory

Answer = tuple[int, dict[str, Any]]


# What each request carries, as the ingress checked it (ingress/session_requests.py, a layer above).
class _Request(Protocol):
    def model_dump(self) -> dict[str, Any]: ...


class CheckoutRequest(_Request, Protocol):
    @property
    def plan(self) -> str: ...
    @property
    def seats(self) -> int: ...
    @property
    def trial_days(self) -> int | None: ...
    @property
    def success_url(self) -> str: ...
    @property
    def cancel_url(self) -> str: ...


class PortalRequest(_Request, Protocol):
    @property
    def return_url(self) -> str: ...
    @property
    def flow(self) -> str | None: ...


class PreviewRequest(Protocol):
    @property
    def plan(self) -> str | None: ...
    @property
    def seats(self) -> int | None: ...


class SessionGateway(BillingGateway, SelfServeGateway, Protocol):
    """The injected `gateway`, as the sessions use it: the commands' port and the self-serve one."""


class SessionRefused(Exception):
    """A session request that cannot be served as asked: 409 with `error` (a word) and `detail`."""

    def __init__(self, error: str, detail: str):
        super().__init__(detail)
        self.error = error
        self.detail = detail


def answer_once(uow_factory: UowFactory, tenant_id: str, endpoint: str, key: str | None, request: dict[str, Any],
                make: Callable[[UnitOfWork, Tenant, str], Answer]) -> Answer:
    """Run `make(uow, tenant, stripe_key)` once per Idempotency-Key; a repeat returns the first
    answer (the same request) or raises KeyReused (another one)."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    with uow_factory() as uow:
        tenant = uow.tenants.lock(tenant_id)
        if key is not None:
            stored = uow.session_answers.get(tenant_id, endpoint, key)
            if stored is not None:
                if stored.request_digest != digest:
                    raise SessionRefused("idempotency_key_reused",
                                         f"the Idempotency-Key was used with another {endpoint} request")
                return stored.status, stored.body
        stripe_key = f"{tenant_id}:{endpoint}:{key or uuid.uuid4()}"
        status, body = make(uow, tenant, stripe_key)
        if key is not None:
            uow.session_answers.add(tenant_id, endpoint, key, request_digest=digest, status=status, body=body)
        uow.commit()
    return status, body


def ensure_customer(uow: UnitOfWork, tenant: Tenant, gateway: SessionGateway, stripe_key: str) -> str:
    """The tenant's Stripe customer id, creating the customer (metadata `tenant_id`) if missing."""
    if tenant.deleted:
        raise UnknownTenant(f"tenant {tenant.id!r} was deleted")
    customer = find_customer(tenant, gateway)
    if customer is None:
        params = gateway.new_customer_request(tenant_id=tenant.id, name=tenant.name, email=tenant.email,
                                              payment_method=None, test_clock=None)
        customer = create_customer_once(tenant, uow, gateway, key=f"{stripe_key}:customer", params=params)
    tenant.stripe_customer_id = customer.id
    return customer.id


def _existing_customer(tenant: Tenant, gateway: SessionGateway) -> str:
    customer = find_customer(tenant, gateway) if not tenant.deleted else None
    if customer is None:
        raise UnknownTenant(f"tenant {tenant.id!r} has no Stripe customer")
    return customer.id


def checkout_session(tenant_id: str, key: str | None, request: CheckoutRequest, *, uow_factory: UowFactory,
                     gateway: SessionGateway,
                     catalog: Catalog) -> Answer:
    """201 {id, url, expires_at}: a subscription-mode Checkout Session on the plan."""
    plan = resolve_plan(catalog, request.plan)
    if plan.price is None:
        raise InvalidMessage(f"plan {plan.key!r} is free: it needs no checkout")

    def make(uow: UnitOfWork, tenant: Tenant, stripe_key: str) -> Answer:
        price_id = plan_price_id(gateway, plan)
        customer_id = ensure_customer(uow, tenant, gateway, stripe_key)
        if live_subscription(gateway, customer_id) is not None:
            raise SessionRefused("already_subscribed", "the tenant has a live subscription: change it "
                                 "(billing.subscription.change) or open a portal session")
        session = gateway.new_checkout_session(customer_id, tenant_id=tenant_id, price_id=price_id,
                                               quantity=request.seats, trial_days=request.trial_days,
                                               success_url=request.success_url, cancel_url=request.cancel_url,
                                               idempotency_key=stripe_key)
        return 201, {"id": session.id, "url": session.url, "expires_at": session.expires_at}

    return answer_once(uow_factory, tenant_id, "checkout-sessions", key, request.model_dump(), make)


def portal_session(tenant_id: str, key: str | None, request: PortalRequest, *, uow_factory: UowFactory,
                   gateway: SessionGateway) -> Answer:
    """201 {id, url}: a Customer Portal session, deep-linked into `flow` when given."""

    def make(uow: UnitOfWork, tenant: Tenant, stripe_key: str) -> Answer:
        customer_id = _existing_customer(tenant, gateway)
        subscription_id = None
        if request.flow in ("subscription_cancel", "subscription_update"):
            sub = live_subscription(gateway, customer_id)
            if sub is None:
                raise SessionRefused("no_live_subscription", f"the tenant has no live subscription for {request.flow}")
            subscription_id = sub.id
        session = gateway.new_portal_session(customer_id, return_url=request.return_url, flow=request.flow,
                                             subscription_id=subscription_id, idempotency_key=stripe_key)
        return 201, {"id": session.id, "url": session.url}

    return answer_once(uow_factory, tenant_id, "portal-sessions", key, request.model_dump(), make)


def setup_intent(tenant_id: str, key: str | None, request: _Request, *, uow_factory: UowFactory,
                 gateway: SessionGateway) -> Answer:
    """201 {client_secret}: a SetupIntent for Stripe.js; on `setup_intent.succeeded` the card
    becomes the customer's default (the webhook path)."""

    def make(uow: UnitOfWork, tenant: Tenant, stripe_key: str) -> Answer:
        customer_id = ensure_customer(uow, tenant, gateway, stripe_key)
        intent = gateway.new_setup_intent(customer_id, tenant_id=tenant_id, idempotency_key=stripe_key)
        return 201, {"client_secret": intent.client_secret}

    return answer_once(uow_factory, tenant_id, "setup-intents", key, request.model_dump(), make)


def preview(tenant_id: str, query: PreviewRequest, *, uow_factory: UowFactory, gateway: SessionGateway,
            catalog: Catalog, now: Clock) -> dict[str, Any]:
    """What `billing.subscription.change` with this plan and/or seats would cost now; send its
    `proration_date` with the change and the charge equals `amount_due`."""
    with uow_factory() as uow:
        tenant = uow.tenants.get(tenant_id)
        if tenant is None:
            raise UnknownTenant(f"no tenant {tenant_id!r}")
        customer_id = _existing_customer(tenant, gateway)
    plan = resolve_plan(catalog, query.plan) if query.plan else None
    if plan is not None and plan.price is None:
        raise InvalidMessage(f"plan {plan.key!r} is free: cancel instead of changing to it")
    sub: SubscriptionView | None = live_subscription(gateway, customer_id)
    if sub is None:
        raise SessionRefused("no_live_subscription", "the tenant has no live subscription to change")
    item = plan_item(catalog, sub)
    price_id = plan_price_id(gateway, plan) if plan else None
    at = int(now().timestamp())
    quote = gateway.preview_change(sub, item, price_id=price_id if price_id != item.price_id else None,
                                   quantity=query.seats if query.seats != item.quantity else None, proration_date=at)
    return {"tenant_id": tenant_id, "subscription_id": sub.id, "plan": plan.key if plan else None,
            "seats": query.seats or item.quantity, "proration_date": at, "amount_due": quote.amount_due,
            "proration_amount": quote.proration_amount, "currency": quote.currency, "charged_at": quote.charged_at}
