"""The billing document of one tenant (`GET /v1/tenants/{id}/billing`), rendered from the local
mirror rows only: what a self-serve billing page shows, and what the buyer may do now.

`document_content` is everything that changes only when Stripe's state changes; it is stored
with the tenant's billing account whenever its digest changes, which is when the document's
version moves (handlers/billing_account.py). `billing_document` reads it back and adds the
version and what depends on the clock alone (a card turning `expiring`, `expired`),
so a card reaching its expiry month changes the answer (and its ETag) without a new version.
"""
from __future__ import annotations

from typing import Any

import calendar
from datetime import datetime, timedelta, timezone

from ..config.catalog import Catalog
from ..models import Subscription, Tenant, UnitOfWork
from .entitlement_rules import STATUS_RANK

# A card is `expiring` from this long before the last day of its expiry month.
EXPIRING_WITHIN = timedelta(days=30)
ENDED = ("canceled", "incomplete_expired")
LIVE = ("active", "trialing", "past_due")


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def shown_subscription(uow: UnitOfWork, tenant_id: str) -> Subscription | None:
    """The subscription a billing page is about: a live one before an ended one, then by status
    (active, trialing, past_due, the rest), then the newest."""
    rows = uow.subscriptions.of_tenant(tenant_id)
    if not rows:
        return None

    def preference(row: Subscription) -> tuple[bool, int, float, str]:
        created = row.stripe_created.timestamp() if row.stripe_created else 0.0
        return (row.status in ENDED, STATUS_RANK.get(row.status, 9), -created, row.id)

    return min(rows, key=preference)


def plan_and_seats(uow: UnitOfWork, catalog: Catalog, sub: Subscription) -> tuple[str | None, int | None]:
    """The catalog plan of the subscription's first item that names one (its price's lookup_key,
    else its product's metadata `plan`), and that item's quantity."""
    for item in sub.items:
        plan = catalog.plan_for_lookup_key(item.price_lookup_key)
        if plan is None and item.product_id:
            product = uow.products.get(item.product_id)
            plan = catalog.plans.get(((product.metadata_ or {}).get("plan") or "") if product else "")
        if plan is not None:
            return plan.key, item.quantity
    return None, None


def card_expires_at(card: dict[str, Any]) -> datetime | None:
    """The first moment a card no longer works: the start of the month after its expiry month."""
    try:
        year, month = int(card["exp_year"]), int(card["exp_month"])
        last_day = calendar.monthrange(year, month)[1]
    except (KeyError, TypeError, ValueError, calendar.IllegalMonthError):
        return None
    return datetime(year, month, last_day, tzinfo=timezone.utc) + timedelta(days=1)


def card_expiring_from(expires_at: datetime) -> datetime:
    """When a card that stops working at `expires_at` turns `expiring`: 30 days before the last
    day of its expiry month (so any day of that month, and the last days of the one before)."""
    return expires_at - timedelta(days=1) - EXPIRING_WITHIN


def card_status(card: dict[str, Any] | None, now: datetime) -> str:
    if not card:
        return "missing"
    expires_at = card_expires_at(card)
    if expires_at is None:
        return "valid"  # not a card (a bank debit, …): nothing expires
    if now >= expires_at:
        return "expired"
    return "expiring" if now >= card_expiring_from(expires_at) else "valid"


def _subscription_json(uow: UnitOfWork, catalog: Catalog, sub: Subscription | None) -> dict[str, Any] | None:
    if sub is None:
        return None
    plan, seats = plan_and_seats(uow, catalog, sub)
    return {"id": sub.id, "plan": plan, "status": sub.status, "seats": seats, "trial_end": iso(sub.trial_end),
            "current_period_start": iso(sub.current_period_start), "current_period_end": iso(sub.current_period_end),
            "cancel_at": iso(sub.cancel_at), "cancel_at_period_end": bool(sub.cancel_at_period_end),
            "canceled_at": iso(sub.canceled_at)}


def _actions(tenant: Tenant, sub: Subscription | None) -> dict[str, Any]:
    """What the buyer may do now (each an existing command or session): change the plan or
    cancel a live subscription, resume a scheduled cancellation, update the card of a customer."""
    live = sub is not None and sub.status in LIVE
    scheduled = sub is not None and live and (bool(sub.cancel_at_period_end) or sub.cancel_at is not None)
    return {"change_plan": live, "cancel": live and not scheduled, "resume": scheduled,
            "update_payment_method": tenant.stripe_customer_id is not None}


def _pending_payment(pending: dict[str, Any] | None, sub: Subscription | None) -> dict[str, Any] | None:
    """The first payment to confirm in-app, while the shown subscription is the incomplete one
    it belongs to (`client_secret` is for Stripe.js: `stripe.confirmCardPayment(client_secret)`)."""
    if not pending or sub is None or sub.status != "incomplete" or pending.get("subscription_id") != sub.id:
        return None
    return {key: pending[key] for key in ("invoice_id", "client_secret", "amount_due", "currency", "expires_at")}


def document_content(uow: UnitOfWork, tenant: Tenant, catalog: Catalog) -> dict[str, Any]:
    """The document without its version and without the clock-dependent card status."""
    account = uow.billing_accounts.get(tenant.id)
    sub = shown_subscription(uow, tenant.id)
    card = dict(account.payment_method) if account and account.payment_method else None
    if card is not None:
        card.pop("id", None)  # ours, to match events; the page has no use for it
    return {
        "tenant_id": tenant.id,
        "customer": account.customer if account else None,
        "subscription": _subscription_json(uow, catalog, sub),
        "payment_method": card,
        "upcoming_invoice": account.upcoming_invoice if account else None,
        "pending_payment": _pending_payment(account.pending_payment if account else None, sub),
        "actions": _actions(tenant, sub),
    }


def billing_document(uow: UnitOfWork, tenant_id: str, catalog: Catalog, now: datetime) -> dict[str, Any] | None:
    """The document as the read API serves it: the content stored with its version (one lookup),
    plus the card's status now; rendered from the rows for a tenant whose document was never
    stored (known before the billing page mirror). None for an unknown tenant."""
    stored = uow.billing_accounts.stored_document(tenant_id)
    if stored is not None:
        body, version = stored
    else:
        tenant = uow.tenants.get(tenant_id)
        if tenant is None:
            return None
        body, version = document_content(uow, tenant, catalog), 0
    card = body["payment_method"]
    body["payment_method"] = {**card, "status": card_status(card, now)} if card else {"status": "missing"}
    body["version"] = version
    return body
