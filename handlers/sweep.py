"""The sweep: list every Stripe product, customer and subscription page by page and reconcile
each tenant (handlers/reconcile.py), plus the tenants we know whose customer is gone from Stripe.

It refuses to change the entitlements of more than `sweep_max_change_ratio` of the tenants at
once: a key of another Stripe account, or a Stripe outage that lists nothing, would otherwise
downgrade them all. It first checks the Stripe account against the pin (handlers.account_pin).
Errors are counted and reported, never swallowed into a "success": a sweep with errors is not
recorded as done.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from collections import defaultdict
from datetime import datetime
from typing import Any

import structlog

from ..bms.port import BillingGateway, CustomerView, ProductView, SubscriptionView
from ..config.catalog import Catalog
from ..config.settings import Settings
from ..errors import BillingSyncError, SafetyRefusal
from .account_pin import check_account
from .dependencies import Clock, Progress, UowFactory, no_progress
from .mirror import apply_product
from .plan_prices import refresh_plan_prices
from .reconcile import reconcile_tenant

log = structlog.get_logger(__name__)

SWEEP_CURSOR = "last_sweep"
# A sweep that would change this many tenants or fewer is always applied: the share rule is for
# fleets, where a handful of changed tenants is normal drift, not a wrong account.
MASS_CHANGE_FLOOR = 10


class MassChangeRefused(SafetyRefusal):
    pass


def sweep(dry_run: bool = False, *, allow_mass_change: bool = False, uow_factory: UowFactory, gateway: BillingGateway,
          catalog: Catalog, now: Clock, settings: Settings, progress: Progress = no_progress) -> dict[str, Any]:
    """Reconcile every tenant against a full listing of Stripe (100 a page, every page).

    When more than `MASS_CHANGE_FLOOR` tenants are involved, a dry pass first counts the known
    tenants whose entitlements would change (tenants seen for the first time, as in a backfill,
    do not count); above `sweep_max_change_ratio` of all of them the sweep raises
    `MassChangeRefused` and changes nothing, unless `allow_mass_change`. The dry pass's Stripe
    reads serve the real one, so the check costs database work, not Stripe calls."""
    # Another account's listing would make every tenant look gone.
    check_account(gateway=gateway, uow_factory=uow_factory, now=now, pin=not dry_run)
    read_once = _ReadOnce(gateway)
    listing = _list_stripe(uow_factory=uow_factory, gateway=read_once, now=now, progress=progress)
    sweep_pass = functools.partial(_sweep_pass, listing, uow_factory=uow_factory, gateway=read_once, catalog=catalog,
                                   now=now, progress=progress)
    if not dry_run and not allow_mass_change and len(listing.runs) > MASS_CHANGE_FLOOR:
        planned = sweep_pass(dry_run=True, quiet=True)
        tenants, changing = planned["tenants"], planned["known_tenants_changed"]
        limit = max(MASS_CHANGE_FLOOR, settings.sweep_max_change_ratio * tenants)
        if changing > limit:
            log.error("reconcile.sweep_refused", tenants=tenants, would_change=changing,
                      max_ratio=settings.sweep_max_change_ratio)
            raise MassChangeRefused(
                f"the sweep would change the entitlements of {changing} of {tenants} tenants, more than "
                f"BILLING_SWEEP_MAX_CHANGE_RATIO={settings.sweep_max_change_ratio}; nothing was changed. "
                "Check `billing-sync account show` and `billing-sync reconcile --dry-run`; if the changes are "
                "right, apply them with `billing-sync reconcile --allow-mass-change`")
    return sweep_pass(dry_run=dry_run)


@dataclasses.dataclass
class _Listing:
    products: list[ProductView]
    products_listed_at: datetime  # taken before the listing: it stamps the copies (StripeEvent.fresh)
    customers: int
    subscriptions: int
    runs: list[tuple[str, dict[str, Any]]]  # (tenant id, what reconcile_tenant is given), in sweep order
    missing_in_stripe: int


def _list_stripe(*, uow_factory: UowFactory, gateway: BillingGateway, now: Clock, progress: Progress) -> _Listing:
    """Everything Stripe has, grouped by tenant, and who to reconcile with what."""
    products_listed_at = now()
    products = list(gateway.all_products())
    customers_by_tenant: dict[str, list[CustomerView]] = defaultdict(list)
    listed_customers: set[str] = set()
    customers = 0
    listed_at = now()
    for customer in gateway.all_customers():
        customers += 1
        progress("Stripe customers listed", customers, None)
        listed_customers.add(customer.id)
        if customer.tenant_id:
            customers_by_tenant[customer.tenant_id].append(customer)
    subs_by_customer: dict[str, list[SubscriptionView]] = defaultdict(list)
    subscriptions = 0
    for sub in gateway.all_subscriptions():
        subscriptions += 1
        progress("Stripe subscriptions listed", subscriptions, None)
        subs_by_customer[sub.customer].append(sub)

    with uow_factory() as uow:
        mapped = uow.tenants.customer_ids()

    runs: list[tuple[str, dict[str, Any]]] = []
    # Each tenant with a customer. Two customers claiming one tenant: ours, else the oldest
    # (the same choice as the gateway's find_customer_by_tenant).
    for tenant_id, found in sorted(customers_by_tenant.items()):
        ours = [c for c in found if c.id == mapped.get(tenant_id)]
        customer = ours[0] if ours else min(found, key=lambda c: c.created)
        runs.append((tenant_id, {"customer": customer, "subscriptions": subs_by_customer.get(customer.id, []),
                                 "listed_at": listed_at}))
    # Tenants we map to a customer that Stripe no longer lists.
    missing = 0
    for tenant_id, customer_id in sorted(mapped.items()):
        if customer_id and customer_id not in listed_customers and tenant_id not in customers_by_tenant:
            missing += 1
            runs.append((tenant_id, {}))
    return _Listing(products, products_listed_at, customers, subscriptions, runs, missing)


def _sweep_pass(listing: _Listing, *, dry_run: bool, quiet: bool = False, uow_factory: UowFactory,
                gateway: BillingGateway, catalog: Catalog, now: Clock, progress: Progress) -> dict[str, Any]:
    report: dict[str, Any] = {"customers": listing.customers, "subscriptions": listing.subscriptions,
              "products": len(listing.products), "tenants": 0, "drifted": 0, "entitlements_changed": 0,
              "known_tenants_changed": 0, "missing_in_stripe": listing.missing_in_stripe, "errors": 0, "failed": [],
              "dry_run": dry_run}

    # Products first, so that tenants are derived with the current enrichment.
    with uow_factory() as uow:
        for product in listing.products:
            keys = gateway.product_feature_keys(product.id)
            apply_product(uow, product.id, product, keys, listing.products_listed_at)
        refresh_plan_prices(uow, gateway=gateway, catalog=catalog, now=now)
        uow.rollback() if dry_run else uow.commit()

    stage, total = ("tenants checked for the mass-change rail" if quiet else "tenants reconciled"), len(listing.runs)
    for tenant_id, given in listing.runs:
        progress(stage, report["tenants"], total)
        report["tenants"] += 1
        try:
            result = reconcile_tenant(tenant_id, cause="sweep", dry_run=dry_run, uow_factory=uow_factory,
                                      gateway=gateway, catalog=catalog, now=now, **copy.deepcopy(given))
        except Exception as exc:  # e.g. rate limited: say so, carry on with the other tenants
            report["errors"] += 1
            report["failed"].append(tenant_id)
            log.warning("reconcile.sweep_tenant_failed", tenant_id=tenant_id, error=type(exc).__name__,
                        reason=getattr(exc, "reason", None), exc_info=not isinstance(exc, BillingSyncError))
            continue
        report["drifted"] += bool(result["drift"])
        report["entitlements_changed"] += bool(result["entitlements_changed"])
        report["known_tenants_changed"] += bool(result["entitlements_changed"] and not result["new"])

    progress(stage, report["tenants"], total)
    if quiet:
        return report
    if not dry_run and not report["errors"]:
        with uow_factory() as uow:
            at = now()
            uow.cursors.set(SWEEP_CURSOR, at.isoformat(), at)
            uow.commit()
    log.info("reconcile.sweep", **{k: v for k, v in report.items() if k != "failed"})
    return report


class _ReadOnce:
    """The gateway, with each read by id answered from Stripe once per sweep (copies after that),
    so the dry pass of the mass-change check and the real pass cost one read. Writes and
    listings go straight through."""

    CACHED = frozenset({"customer", "subscription", "product", "price", "active_entitlement_keys",
                        "product_feature_keys", "payment_method", "invoice", "invoices_of", "upcoming_invoice",
                        "price_for_lookup_key"})

    def __init__(self, bms: BillingGateway):
        self._bms = bms
        self._answers: dict[tuple[str, tuple[object, ...]], object] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._bms, name)
        if name not in self.CACHED:
            return attr

        def read_once(*args: object) -> object:
            key = (name, args)
            if key not in self._answers:
                self._answers[key] = attr(*args)
            return copy.deepcopy(self._answers[key])

        return read_once
