"""Repairing drift without relying on webhooks: per tenant, a full sweep, and event catch-up.

- `reconcile_tenant` re-reads one tenant's customer, every subscription and its active
  entitlements, applies them and re-derives entitlements (the `reconcile_tenant` actor and
  `billing-sync reconcile --tenant`). It also applies time-based rules (a past_due grace
  period running out, a cancellation date passing) that no Stripe event announces.
- `sweep` lists every Stripe customer and subscription page by page and reconciles each tenant,
  plus the tenants we know whose customer is gone from Stripe. It refuses to change the
  entitlements of more than `sweep_max_change_ratio` of the tenants at once (a key of another
  Stripe account, or a Stripe outage that lists nothing, would otherwise downgrade them all).
- `refresh_due` re-derives, from the database alone, tenants whose plan lapsed with time.
- `catch_up` lists the Stripe events created since the last one seen and enqueues those not in
  the ledger, for webhooks that never arrived (endpoint down longer than Stripe retries).
Both `sweep` and `catch_up` first check the Stripe account against the pin (handlers.account_pin).
Errors are counted and reported, never swallowed into a "success".
"""
from __future__ import annotations

import copy
import dataclasses
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Callable

import structlog
from sqlalchemy import and_, or_, select

from ..contract.stripe_event import event_problem
from ..errors import BillingSyncError, SafetyRefusal
from ..models import EntitlementSnapshot, Subscription, Tenant
from .account_pin import check_account
from .entitlement_rules import GRANTING
from .entitlements import refresh_entitlements
from .stripe_state import (
    apply_active_entitlements,
    apply_customer,
    apply_product,
    apply_subscription,
    customer_id_of,
    ensure_products,
    product_ids_of,
    tenant_id_of,
)

log = structlog.get_logger(__name__)

EVENTS_CURSOR = "events_seen"
SWEEP_CURSOR = "last_sweep"
# Stripe timestamps are whole seconds and its event list is eventually consistent: look back a
# little before the newest event seen; the ledger drops what was already processed.
CATCH_UP_OVERLAP_S = 60
# With no cursor yet (a new deployment), look back this far rather than 30 days of history.
CATCH_UP_INITIAL_LOOKBACK_S = 3600

_UNREAD = object()
# A sweep that would change this many tenants or fewer is always applied: the share rule is for
# fleets, where a handful of changed tenants is normal drift, not a wrong account.
MASS_CHANGE_FLOOR = 10


class MassChangeRefused(SafetyRefusal):
    pass


def reconcile_tenant(tenant_id: str, ctx, cause: str = "reconcile", dry_run: bool = False, *,
                     customer=_UNREAD, subscriptions: list[dict] | None = None,
                     listed_at: datetime | None = None) -> dict:
    """Make one tenant's rows equal to Stripe and re-derive its entitlements.

    `customer` and `subscriptions` may be passed by the sweep, which has already listed them
    (from `listed_at` on, which stamps the copies: see StripeEvent.fresh); otherwise they are
    read here. Returns a drift report; with `dry_run` nothing is written.
    """
    with ctx.uow() as uow:
        session = uow.session
        known = session.get(Tenant, tenant_id) is not None
        tenant = uow.lock_tenant(tenant_id)
        now = listed_at or ctx.now()  # before any read of what is applied with it
        customer_id = tenant.stripe_customer_id
        if customer is _UNREAD:
            if customer_id:
                customer = ctx.bms.retrieve_customer(customer_id)
            else:
                customer = ctx.bms.find_customer_for_tenant(tenant_id)
        if customer is not None:
            customer_id = customer["id"]
        if not known and customer is None:
            uow.rollback()  # not ours to invent: no local row and no Stripe customer
            return {"tenant_id": tenant_id, "found": False, "drift": [], "entitlements_changed": False,
                    "version": None, "dry_run": dry_run}

        drift: list[str] = []
        if customer_id:
            drift += apply_customer(session, tenant, customer_id, customer, now)
        seen: set[str] = set()
        if customer is not None:
            if subscriptions is None:
                subscriptions = list(ctx.bms.list_subscriptions(customer=customer_id, status="all"))
            for sub in subscriptions:
                drift += apply_subscription(session, tenant, sub["id"], sub, now)
                ensure_products(session, ctx, product_ids_of(sub))
                seen.add(sub["id"])
            drift += apply_active_entitlements(tenant, ctx.bms.list_active_entitlement_keys(customer_id), now)
        for row in session.execute(select(Subscription).where(Subscription.tenant_id == tenant_id)).scalars().all():
            if row.id not in seen and row.status != "canceled":
                # Not listed any more: deleted, or (rarely) moved; ask for it by id.
                sub = ctx.bms.retrieve_subscription(row.id) if customer is not None else None
                if sub is not None and customer_id_of(sub) != customer_id:
                    sub = None
                drift += apply_subscription(session, tenant, row.id, sub, now)
        changed = refresh_entitlements(uow, tenant, ctx, cause=cause)
        version = uow.snapshots.version(tenant_id)
        if dry_run:
            uow.rollback()
        else:
            uow.commit()
    if drift or changed:
        log.info("reconcile.tenant", tenant_id=tenant_id, drift=drift, entitlements_changed=changed,
                 dry_run=dry_run, cause=cause)
    return {"tenant_id": tenant_id, "found": True, "new": not known, "drift": drift,
            "entitlements_changed": changed, "version": version, "dry_run": dry_run}


def sweep(ctx, dry_run: bool = False, *, allow_mass_change: bool = False) -> dict:
    """Reconcile every tenant against a full listing of Stripe (100 a page, every page).

    When more than `MASS_CHANGE_FLOOR` tenants are involved, a dry pass first counts the known
    tenants whose entitlements would change (tenants seen for the first time, as in a backfill,
    do not count); above `sweep_max_change_ratio` of all of them the sweep raises
    `MassChangeRefused` and changes nothing, unless `allow_mass_change`. The dry pass's Stripe
    reads serve the real one, so the check costs database work, not Stripe calls."""
    check_account(ctx, pin=not dry_run)  # another account's listing would make every tenant look gone
    ctx = dataclasses.replace(ctx, bms=_ReadOnce(ctx.bms))
    listing = _list_stripe(ctx)
    if not dry_run and not allow_mass_change and len(listing.runs) > MASS_CHANGE_FLOOR:
        planned = _sweep_pass(ctx, listing, dry_run=True, quiet=True)
        tenants, changing = planned["tenants"], planned["known_tenants_changed"]
        limit = max(MASS_CHANGE_FLOOR, ctx.settings.sweep_max_change_ratio * tenants)
        if changing > limit:
            log.error("reconcile.sweep_refused", tenants=tenants, would_change=changing,
                      max_ratio=ctx.settings.sweep_max_change_ratio)
            raise MassChangeRefused(
                f"the sweep would change the entitlements of {changing} of {tenants} tenants, more than "
                f"BILLING_SWEEP_MAX_CHANGE_RATIO={ctx.settings.sweep_max_change_ratio}; nothing was changed. "
                "Check `billing-sync account show` and `billing-sync reconcile --dry-run`; if the changes are "
                "right, apply them with `billing-sync reconcile --allow-mass-change`")
    return _sweep_pass(ctx, listing, dry_run=dry_run)


@dataclasses.dataclass
class _Listing:
    products: list[dict]
    products_listed_at: datetime  # taken before the listing: it stamps the copies (StripeEvent.fresh)
    customers: int
    subscriptions: int
    runs: list[tuple[str, dict]]  # (tenant id, what reconcile_tenant is given), in sweep order
    missing_in_stripe: int


def _list_stripe(ctx) -> _Listing:
    """Everything Stripe has, grouped by tenant, and who to reconcile with what."""
    products_listed_at = ctx.now()
    products = list(ctx.bms.list_products())
    customers_by_tenant: dict[str, list[dict]] = defaultdict(list)
    listed_customers: set[str] = set()
    customers = 0
    listed_at = ctx.now()
    for customer in ctx.bms.list_customers():
        customers += 1
        listed_customers.add(customer["id"])
        tenant_id = tenant_id_of(customer)
        if tenant_id:
            customers_by_tenant[tenant_id].append(customer)
    subs_by_customer: dict[str, list[dict]] = defaultdict(list)
    subscriptions = 0
    for sub in ctx.bms.list_subscriptions(status="all"):
        subscriptions += 1
        subs_by_customer[customer_id_of(sub)].append(sub)

    with ctx.uow() as uow:
        mapped = dict(uow.session.execute(select(Tenant.id, Tenant.stripe_customer_id)).all())

    runs: list[tuple[str, dict]] = []
    # Each tenant with a customer. Two customers claiming one tenant: ours, else the oldest
    # (the same choice as StripeGateway.find_customer_for_tenant).
    for tenant_id, found in sorted(customers_by_tenant.items()):
        ours = [c for c in found if c["id"] == mapped.get(tenant_id)]
        customer = ours[0] if ours else min(found, key=lambda c: c.get("created") or 0)
        runs.append((tenant_id, {"customer": customer, "subscriptions": subs_by_customer.get(customer["id"], []),
                                 "listed_at": listed_at}))
    # Tenants we map to a customer that Stripe no longer lists.
    missing = 0
    for tenant_id, customer_id in sorted(mapped.items()):
        if customer_id and customer_id not in listed_customers and tenant_id not in customers_by_tenant:
            missing += 1
            runs.append((tenant_id, {}))
    return _Listing(products, products_listed_at, customers, subscriptions, runs, missing)


def _sweep_pass(ctx, listing: _Listing, *, dry_run: bool, quiet: bool = False) -> dict:
    report = {"customers": listing.customers, "subscriptions": listing.subscriptions,
              "products": len(listing.products), "tenants": 0, "drifted": 0, "entitlements_changed": 0,
              "known_tenants_changed": 0, "missing_in_stripe": listing.missing_in_stripe, "errors": 0, "failed": [], "dry_run": dry_run}

    # Products first, so that tenants are derived with the current enrichment.
    with ctx.uow() as uow:
        for product in listing.products:
            keys = ctx.bms.list_product_feature_keys(product["id"])
            apply_product(uow.session, product["id"], product, keys, listing.products_listed_at)
        uow.rollback() if dry_run else uow.commit()

    for tenant_id, given in listing.runs:
        report["tenants"] += 1
        try:
            result = reconcile_tenant(tenant_id, ctx, cause="sweep", dry_run=dry_run,
                                      **copy.deepcopy(given))
        except Exception as exc:  # e.g. rate limited: say so, carry on with the other tenants
            report["errors"] += 1
            report["failed"].append(tenant_id)
            log.warning("reconcile.sweep_tenant_failed", tenant_id=tenant_id, error=type(exc).__name__,
                        reason=getattr(exc, "reason", None), exc_info=not isinstance(exc, BillingSyncError))
            continue
        report["drifted"] += bool(result["drift"])
        report["entitlements_changed"] += bool(result["entitlements_changed"])
        report["known_tenants_changed"] += bool(result["entitlements_changed"] and not result["new"])

    if quiet:
        return report
    if not dry_run and not report["errors"]:
        _set_cursor(ctx, SWEEP_CURSOR, ctx.now().isoformat())
    log.info("reconcile.sweep", **{k: v for k, v in report.items() if k != "failed"})
    return report


class _ReadOnce:
    """The gateway, with each read by id answered from Stripe once per sweep (copies after that),
    so the dry pass of the mass-change check and the real pass cost one read. Writes and
    listings go straight through."""

    CACHED = frozenset({"retrieve_customer", "retrieve_subscription", "retrieve_product", "retrieve_price",
                        "list_active_entitlement_keys", "list_product_feature_keys"})

    def __init__(self, bms):
        self._bms = bms
        self._answers: dict[tuple, object] = {}

    def __getattr__(self, name: str):
        attr = getattr(self._bms, name)
        if name not in self.CACHED:
            return attr

        def read_once(*args):
            key = (name, args)
            if key not in self._answers:
                self._answers[key] = attr(*args)
            return copy.deepcopy(self._answers[key])

        return read_once


def refresh_due(ctx, cause: str = "schedule") -> int:
    """Re-derive the tenants whose entitlements may have lapsed with time alone (a past_due grace
    period ended, a cancellation date passed): no Stripe event says so. Database only, so cheap
    enough for the scheduler to run every minute; returns how many tenants changed."""
    now = ctx.now()
    grace_start = now - timedelta(days=ctx.catalog.past_due_grace_days)
    lapsed = or_(
        and_(Subscription.status == "past_due", Subscription.past_due_since <= grace_start),
        and_(Subscription.cancel_at_period_end.is_(True), Subscription.current_period_end <= now),
        Subscription.cancel_at <= now,
    )
    with ctx.uow() as uow:
        tenant_ids = sorted(set(uow.session.execute(
            select(Subscription.tenant_id)
            .join(EntitlementSnapshot, EntitlementSnapshot.tenant_id == Subscription.tenant_id)
            .where(Subscription.status.in_(GRANTING), lapsed,
                   EntitlementSnapshot.plan != ctx.catalog.free_plan)
        ).scalars()))
    changed = 0
    for tenant_id in tenant_ids:
        with ctx.uow() as uow:
            tenant = uow.lock_tenant(tenant_id)
            changed += refresh_entitlements(uow, tenant, ctx, cause=cause)
            uow.commit()
    if changed:
        log.info("reconcile.refresh_due", candidates=len(tenant_ids), changed=changed)
    return changed


def catch_up(ctx, enqueue: Callable[[dict], None]) -> int:
    """Enqueue the Stripe events created since the newest one seen that are not in the ledger.

    The cursor moves only after every event was handed to `enqueue`, so a failure replays them.
    Another Stripe account's events are never enqueued (the account pin).
    """
    check_account(ctx)
    now = ctx.now()
    with ctx.uow() as uow:
        cursor = uow.cursors.value(EVENTS_CURSOR)
        seen = int(cursor) if cursor is not None else None
    since = (seen - CATCH_UP_OVERLAP_S) if seen is not None else int((now - timedelta(
        seconds=CATCH_UP_INITIAL_LOOKBACK_S)).timestamp())
    listed = list(ctx.bms.list_events(created_gte=since))
    if not listed:
        return 0
    # The listing is outside the ingress: an event that breaks the Stripe event check must not
    # stop the catch-up (or reach the ledger query). It goes to the worker, which fails it as
    # invalid with one dead letter, in the pass whose window first holds it (caveat: one with a
    # `created` that is no integer, which Stripe's own filter never lists, goes every pass).
    events = sorted((e for e in listed if event_problem(e) is None), key=lambda e: (e.get("created") or 0, e["id"]))
    unusable = [e for e in listed if event_problem(e) is not None
                and (seen is None or not isinstance(e.get("created"), int) or e["created"] > seen)]
    with ctx.uow() as uow:
        done = uow.ledger.processed_among(e["id"] for e in events)
    enqueued = 0
    received_at = now.isoformat()
    for event in [*events, *unusable]:
        if event_problem(event) is None and event["id"] in done:
            continue
        enqueue({"event": event, "received_at": received_at})
        enqueued += 1
    newest = max((e["created"] for e in listed if type(e.get("created")) is int), default=None)
    if newest is not None:
        _set_cursor(ctx, EVENTS_CURSOR, str(max(newest, seen or 0)))
    if enqueued:
        log.info("reconcile.catch_up", enqueued=enqueued, listed=len(listed), unusable=len(unusable), since=since)
    return enqueued


def _set_cursor(ctx, name: str, value: str) -> None:
    with ctx.uow() as uow:
        uow.cursors.set(name, value, ctx.now())
        uow.commit()
