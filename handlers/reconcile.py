"""Repairing drift without relying on webhooks: per tenant, a full sweep, and event catch-up.

- `reconcile_tenant` re-reads one tenant's customer, every subscription and its active
  entitlements, applies them and re-derives entitlements (the `reconcile_tenant` actor and
  `billing-sync reconcile --tenant`). It also applies time-based rules (a past_due grace
  period running out, a cancellation date passing) that no Stripe event announces.
- `sweep` lists every Stripe customer and subscription page by page and reconciles each tenant,
  plus the tenants we know whose customer is gone from Stripe.
- `refresh_due` re-derives, from the database alone, tenants whose plan lapsed with time.
- `catch_up` lists the Stripe events created since the last one seen and enqueues those not in
  the ledger, for webhooks that never arrived (endpoint down longer than Stripe retries).
Errors are counted and reported, never swallowed into a "success".
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Callable

import structlog
from sqlalchemy import and_, or_, select

from ..errors import BillingSyncError
from ..models import EntitlementSnapshot, ProcessedMessage, Subscription, SyncCursor, Tenant
from .entitlements import GRANTING, refresh_entitlements
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
        version = _version(session, tenant_id)
        if dry_run:
            uow.rollback()
        else:
            uow.commit()
    if drift or changed:
        log.info("reconcile.tenant", tenant_id=tenant_id, drift=drift, entitlements_changed=changed,
                 dry_run=dry_run, cause=cause)
    return {"tenant_id": tenant_id, "found": True, "drift": drift, "entitlements_changed": changed,
            "version": version, "dry_run": dry_run}


def _version(session, tenant_id: str) -> int | None:
    snapshot = session.get(EntitlementSnapshot, tenant_id)
    return snapshot.version if snapshot else None


def sweep(ctx, dry_run: bool = False) -> dict:
    """Reconcile every tenant against a full listing of Stripe (100 a page, every page)."""
    report = {"customers": 0, "subscriptions": 0, "products": 0, "tenants": 0, "drifted": 0,
              "entitlements_changed": 0, "missing_in_stripe": 0, "errors": 0, "failed": [],
              "dry_run": dry_run}

    # 1. Products first, so that tenants are derived with the current enrichment.
    with ctx.uow() as uow:
        listed_at = ctx.now()
        for product in ctx.bms.list_products():
            report["products"] += 1
            keys = ctx.bms.list_product_feature_keys(product["id"])
            apply_product(uow.session, product["id"], product, keys, listed_at)
        uow.rollback() if dry_run else uow.commit()

    # 2. Everything Stripe has, grouped by tenant.
    customers_by_tenant: dict[str, list[dict]] = defaultdict(list)
    listed_customers: set[str] = set()
    listed_at = ctx.now()
    for customer in ctx.bms.list_customers():
        report["customers"] += 1
        listed_customers.add(customer["id"])
        tenant_id = tenant_id_of(customer)
        if tenant_id:
            customers_by_tenant[tenant_id].append(customer)
    subs_by_customer: dict[str, list[dict]] = defaultdict(list)
    for sub in ctx.bms.list_subscriptions(status="all"):
        report["subscriptions"] += 1
        subs_by_customer[customer_id_of(sub)].append(sub)

    with ctx.uow() as uow:
        mapped = dict(uow.session.execute(select(Tenant.id, Tenant.stripe_customer_id)).all())

    def run(tenant_id: str, **kw) -> None:
        report["tenants"] += 1
        try:
            result = reconcile_tenant(tenant_id, ctx, cause="sweep", dry_run=dry_run, **kw)
        except Exception as exc:  # e.g. rate limited: say so, carry on with the other tenants
            report["errors"] += 1
            report["failed"].append(tenant_id)
            log.warning("reconcile.sweep_tenant_failed", tenant_id=tenant_id, error=type(exc).__name__,
                        reason=getattr(exc, "reason", None), exc_info=not isinstance(exc, BillingSyncError))
            return
        report["drifted"] += bool(result["drift"])
        report["entitlements_changed"] += bool(result["entitlements_changed"])

    # 3. Each tenant with a customer. Two customers claiming one tenant: ours, else the oldest
    #    (the same choice as StripeGateway.find_customer_for_tenant).
    for tenant_id, customers in sorted(customers_by_tenant.items()):
        ours = [c for c in customers if c["id"] == mapped.get(tenant_id)]
        customer = ours[0] if ours else min(customers, key=lambda c: c.get("created") or 0)
        run(tenant_id, customer=customer, subscriptions=subs_by_customer.get(customer["id"], []),
            listed_at=listed_at)

    # 4. Tenants we map to a customer that Stripe no longer lists.
    for tenant_id, customer_id in sorted(mapped.items()):
        if customer_id and customer_id not in listed_customers and tenant_id not in customers_by_tenant:
            report["missing_in_stripe"] += 1
            run(tenant_id)

    if not dry_run and not report["errors"]:
        _set_cursor(ctx, SWEEP_CURSOR, ctx.now().isoformat())
    log.info("reconcile.sweep", **{k: v for k, v in report.items() if k != "failed"})
    return report


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
    """
    now = ctx.now()
    with ctx.uow() as uow:
        cursor = uow.session.get(SyncCursor, EVENTS_CURSOR)
        seen = int(cursor.value) if cursor else None
    since = (seen - CATCH_UP_OVERLAP_S) if seen is not None else int((now - timedelta(
        seconds=CATCH_UP_INITIAL_LOOKBACK_S)).timestamp())
    events = sorted(ctx.bms.list_events(created_gte=since), key=lambda e: (e.get("created") or 0, e["id"]))
    if not events:
        return 0
    with ctx.uow() as uow:
        ids = [e["id"] for e in events]
        done: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            done.update(uow.session.execute(select(ProcessedMessage.id).where(ProcessedMessage.id.in_(chunk))).scalars())
    enqueued = 0
    received_at = now.isoformat()
    for event in events:
        if event["id"] in done:
            continue
        enqueue({"event": event, "received_at": received_at})
        enqueued += 1
    newest = max(e.get("created") or 0 for e in events)
    _set_cursor(ctx, EVENTS_CURSOR, str(max(newest, seen or 0)))
    if enqueued:
        log.info("reconcile.catch_up", enqueued=enqueued, listed=len(events), since=since)
    return enqueued


def _set_cursor(ctx, name: str, value: str) -> None:
    with ctx.uow() as uow:
        row = uow.session.get(SyncCursor, name)
        if row is None:
            uow.session.add(SyncCursor(name=name, value=value, updated_at=ctx.now()))
        else:
            row.value = value
            row.updated_at = ctx.now()
        uow.commit()
