"""What a command decides on: the catalog plan and its Stripe price, the tenant's Stripe customer
and its live subscription, each read fresh from Stripe through the gateway port.

The tenant's customer is the one linked locally, else the one whose metadata `tenant_id` names
it (made by an earlier attempt of a command, or by staff), which is then linked.
"""
from __future__ import annotations

from ..bms.port import BillingGateway, CustomerView, ItemView, SubscriptionView
from ..config.catalog import Catalog, Plan
from ..errors import UnknownPlan, UnknownTenant
from ..models import Tenant


def resolve_plan(catalog: Catalog, name: str) -> Plan:
    """A catalog plan by key (`pro`) or by its price's lookup_key (`pro_monthly`)."""
    plan = catalog.plans.get(name) or catalog.plan_for_lookup_key(name)
    if plan is None:
        raise UnknownPlan(f"no plan {name!r} in the catalog")
    return plan


def plan_price_id(gateway: BillingGateway, plan: Plan) -> str:
    lookup_key = plan.paid_price.lookup_key
    price_id = gateway.price_id_for_lookup_key(lookup_key)
    if price_id is None:
        raise UnknownPlan(f"no active Stripe price with lookup_key {lookup_key!r} (plan {plan.key!r})")
    return price_id


def find_customer(tenant: Tenant, gateway: BillingGateway) -> CustomerView | None:
    """The tenant's live Stripe customer: the one we know, else one tagged with its tenant_id
    (made by an earlier attempt of a command, or by staff), which is then remembered."""
    if tenant.stripe_customer_id:
        customer = gateway.customer(tenant.stripe_customer_id)
        if customer is not None:
            return customer
    return _find_tagged_customer(tenant, gateway)


def customer_id_for(tenant: Tenant, gateway: BillingGateway) -> str | None:
    """Like `find_customer` but without a Stripe read when the id is known locally."""
    if tenant.stripe_customer_id:
        return tenant.stripe_customer_id
    customer = _find_tagged_customer(tenant, gateway)
    return customer.id if customer is not None else None


def _find_tagged_customer(tenant: Tenant, gateway: BillingGateway) -> CustomerView | None:
    """The customer whose metadata `tenant_id` names the tenant; remembered when found."""
    customer = gateway.find_customer_by_tenant(tenant.id)
    if customer is not None:
        tenant.stripe_customer_id = customer.id
    return customer


def require_customer_id(tenant: Tenant, gateway: BillingGateway) -> str:
    if tenant.deleted:
        raise UnknownTenant(f"tenant {tenant.id!r} was deleted")
    customer_id = customer_id_for(tenant, gateway)
    if customer_id is None:
        raise UnknownTenant(f"tenant {tenant.id!r} has no Stripe customer; send billing.tenant.provisioned first")
    return customer_id


def live_subscription(gateway: BillingGateway, customer_id: str) -> SubscriptionView | None:
    """The tenant's current subscription (the newest one that has not ended)."""
    return next(iter(gateway.live_subscriptions(customer_id)), None)


def plan_item(catalog: Catalog, sub: SubscriptionView) -> ItemView:
    """The item that carries the plan and the seats: the first whose price is in the catalog,
    else the first licensed (not metered) one."""
    for item in sub.items:
        if catalog.plan_for_lookup_key(item.lookup_key):
            return item
    return next((item for item in sub.items if not item.metered), sub.items[0])

