"""What varies between Stripe event families, as the strategies the pipeline (stripe_pipeline.py)
is run with: everything else (ledger, tenant lock, entitlements, commit) is the same for all.

A family is either about one tenant (customers, subscriptions, invoices, active entitlements:
the event's customer names the tenant) or a catalog change that reaches every tenant on it
(products and prices). registry.py says which event types belong to which family.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..bms.port import BillingGateway
from ..models import Tenant, UnitOfWork
from .dependencies import Clock
from .stripe_event import StripeEvent


class Resync(Protocol):
    """A tenant family's re-read: what it needs from Stripe and the clock, and nothing else."""

    def __call__(self, uow: UnitOfWork, tenant: Tenant, event: StripeEvent, *, gateway: BillingGateway,
                 now: Clock) -> object: ...


class Reread(Protocol):
    """A catalog family's re-read of the changed catalog objects."""

    def __call__(self, uow: UnitOfWork, event: StripeEvent, change: CatalogChange, *, gateway: BillingGateway,
                 now: Clock) -> Any: ...


def _usable(event: StripeEvent) -> str | None:
    return None


def no_tenant_hint(event: StripeEvent) -> str | None:
    """The payload names no tenant (only the customer does)."""
    return None


@dataclass(frozen=True)
class TenantFamily:
    """Events about the state of one customer's tenant.

    The pipeline finds the tenant from `event.customer_id` (our mapping, else `tenant_hint`, else
    the customer's metadata read from Stripe), locks it, maps the customer if it is new to the
    tenant, then calls `resync` to re-read from Stripe and apply what the event is about."""

    # Re-read (unless our copy is fresh: `event.fresh`) and apply:
    # `resync(uow, tenant, event, gateway=…, now=…)`.
    resync: Resync
    # Why the event names nothing to re-read (the ledger's `ignored` reason), or None.
    unusable: Callable[[StripeEvent], str | None] = _usable
    # A tenant id the payload itself may name (an object whose metadata we wrote), or None.
    tenant_hint: Callable[[StripeEvent], str | None] = no_tenant_hint


@dataclass(frozen=True)
class CatalogChange:
    product_id: str
    price_id: str | None  # for a price event: the price, whose lookup_key may have moved


@dataclass(frozen=True)
class CatalogFamily:
    """A catalog change in Stripe that reaches every tenant on it, each under its own lock in its
    own transaction (a catalog change must not hold a thousand tenant locks at once)."""

    # What changed, or None when the event names no product (ignored, `no_product`).
    change_of: Callable[[StripeEvent], CatalogChange | None]
    # Re-read the catalog objects once, in their own transaction:
    # `reread(uow, event, change, gateway=…, now=…)`; what it answers is handed to `apply`.
    reread: Reread
    # The tenants the change reaches.
    tenants: Callable[[UnitOfWork, CatalogChange], list[str]]
    # What the change does to one tenant's rows, under its lock: `apply(uow, tenant, change, read)`.
    apply: Callable[[UnitOfWork, Tenant, CatalogChange, Any], None]


StripeFamily = TenantFamily | CatalogFamily
