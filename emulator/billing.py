"""The subscription lifecycle: periods, invoices, payments, trials, dunning, cancellation.

Everything that happens *because time passed* lives here, driven by `run_due(store, clock, until)`:
for customers on a test clock when the clock advances, for the others (real time) before every
API request. Transitions are applied one at a time in time order, each at its own moment, so the
objects and events look as if Stripe had been running all along.

Modelled on Stripe's defaults: a subscription's first invoice is charged at creation
(`payment_behavior=allow_incomplete`: a failed first payment leaves it `incomplete`, and after
23 hours `incomplete_expired`); each renewal invoices and charges at once; a failed renewal makes
the subscription `past_due` and is retried on a schedule spread over `faults.dunning_days`; the
last failed retry cancels the subscription ("cancel the subscription" is Stripe's default final
action). `trial_will_end` fires three days before a trial ends; a trial that ends without a
payment method pauses or cancels the subscription instead when its
`trial_settings.end_behavior.missing_payment_method` says so, and a paused subscription is not
billed until it is resumed.
"""
from __future__ import annotations

import calendar
from datetime import datetime, timezone

from .ids import new_id
from .shapes import template
from .store import Store, public

ENDED = {"canceled", "incomplete_expired"}
ENTITLED = {"active", "trialing", "past_due"}
DAY = 86400
RETRY_FRACTIONS = (1 / 14, 3 / 14, 7 / 14, 1.0)   # of the dunning length, after the first failure
INCOMPLETE_EXPIRY = 23 * 3600
TRIAL_WILL_END_AHEAD = 3 * DAY


# -- periods ----------------------------------------------------------------------------------

def boundary(anchor: int, interval: str, count: int, k: int) -> int:
    """The k-th period boundary after `anchor` (months clamp to the anchor's day, like Stripe)."""
    if interval == "day":
        return anchor + DAY * count * k
    if interval == "week":
        return anchor + 7 * DAY * count * k
    months = count * k * (12 if interval == "year" else 1)
    start = datetime.fromtimestamp(anchor, timezone.utc)
    total = start.month - 1 + months
    year, month = start.year + total // 12, total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def items_of(store: Store, sub: dict) -> list[dict]:
    """The live items, in the order they were added (ids are indexed on the subscription)."""
    items = (store.get("subscription_item", item_id) for item_id in sub["_items"])
    return [i for i in items if i is not None and not i.get("_deleted")]


def recurring_of(store: Store, sub: dict) -> dict:
    return store.get("price", items_of(store, sub)[0]["price"])["recurring"]


def product_ids(store: Store, sub: dict) -> set[str]:
    return {store.get("price", i["price"])["product"] for i in items_of(store, sub)}


def set_period(store: Store, sub: dict, start: int, end: int) -> None:
    sub["_period_start"], sub["_period_end"] = start, end
    for item in items_of(store, sub):
        item["current_period_start"], item["current_period_end"] = start, end


def period_start_around(store: Store, sub: dict, moment: int) -> int:
    """The start of the billing period (counted from the anchor) that contains `moment`."""
    recurring, anchor = recurring_of(store, sub), sub["billing_cycle_anchor"]
    start, k = anchor, 1
    while (nxt := boundary(anchor, recurring["interval"], recurring["interval_count"], k)) <= moment:
        start, k = nxt, k + 1
    return start


def next_period_end(store: Store, sub: dict, start: int) -> int:
    recurring = recurring_of(store, sub)
    k = 1
    while (end := boundary(sub["billing_cycle_anchor"], recurring["interval"], recurring["interval_count"], k)) <= start:
        k += 1
    return end


# -- rendering --------------------------------------------------------------------------------

def plan_of(price: dict) -> dict:
    plan = template("plan")
    recurring = price["recurring"] or {}
    plan.update({
        "active": price["active"], "amount": price["unit_amount"], "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"], "created": price["created"], "currency": price["currency"],
        "id": price["id"], "interval": recurring.get("interval"), "interval_count": recurring.get("interval_count"),
        "livemode": False, "metadata": dict(price["metadata"]), "meter": recurring.get("meter"),
        "nickname": price["nickname"], "product": price["product"], "tiers_mode": None, "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"), "usage_type": recurring.get("usage_type", "licensed"),
    })
    return plan


def render_item(store: Store, item: dict) -> dict:
    body = public(item)
    price = store.get("price", item["price"])
    body["price"] = store.render(price)
    body["plan"] = plan_of(price)
    return body


def render_subscription(store: Store, sub: dict) -> dict:
    body = public(sub)
    items = [render_item(store, i) for i in items_of(store, sub)]
    body["items"] = {"object": "list", "data": items, "has_more": False,
                     "url": f"/v1/subscription_items?subscription={sub['id']}"}
    return body


# -- invoices and payments --------------------------------------------------------------------

def payment_method_for(store: Store, sub: dict) -> dict | None:
    pm_id = sub.get("default_payment_method")
    if not pm_id:
        customer = store.get("customer", sub["customer"])
        pm_id = customer["invoice_settings"]["default_payment_method"] if customer else None
    return store.get("payment_method", pm_id) if pm_id else None


def usage_quantity(store: Store, meter_id: str, customer_id: str, start: int, end: int) -> int:
    total = 0.0
    for event in store.all("billing.meter_event"):
        if event["_meter"] == meter_id and event["_customer"] == customer_id and start <= event["timestamp"] < end:
            total += event["_value"]
    return int(total)


def _line(store: Store, sub: dict, item: dict, invoice_id: str, start: int, end: int, *, quantity: int,
          trial: bool) -> dict:
    price = store.get("price", item["price"])
    product = store.get("product", price["product"])
    amount = 0 if trial else (price["unit_amount"] or 0) * quantity
    name = product["name"] if product else price["id"]
    line = template("invoice")["lines"]["data"][0]
    line.update({
        "amount": amount, "currency": price["currency"],
        "description": f"Trial period for {name}" if trial else f"{quantity} × {name}",
        "discount_amounts": [], "discountable": True, "discounts": [], "id": new_id("il", 24),
        "invoice": invoice_id, "livemode": False, "metadata": {}, "period": {"start": start, "end": end},
        "quantity": quantity, "subscription": sub["id"], "pretax_credit_amounts": [], "taxes": [],
        "subtotal": amount, "quantity_decimal": str(quantity),
        "parent": {"invoice_item_details": None, "type": "subscription_item_details",
                   "subscription_item_details": {"invoice_item": None, "proration": False,
                                                 "proration_details": {"credited_items": None},
                                                 "subscription": sub["id"], "subscription_item": item["id"]}},
        "pricing": {"type": "price_details", "price_details": {"price": price["id"], "product": price["product"]},
                    "unit_amount_decimal": price["unit_amount_decimal"]},
    })
    return line


def create_invoice(store: Store, sub: dict, reason: str, now: int, start: int, end: int, *,
                   trial: bool = False, usage_from: int | None = None) -> dict:
    """Create and finalize a subscription invoice (Stripe drafts renewals for an hour first;
    we finalize at once, so a renewal is charged at the period boundary)."""
    customer = store.get("customer", sub["customer"])
    invoice_id = new_id("in", 24)
    lines = []
    for item in items_of(store, sub):
        price = store.get("price", item["price"])
        if (price["recurring"] or {}).get("usage_type") == "metered":
            if usage_from is None:
                continue
            quantity = usage_quantity(store, price["recurring"]["meter"], sub["customer"], usage_from, start)
            lines.append(_line(store, sub, item, invoice_id, usage_from, start, quantity=quantity, trial=False))
        else:
            lines.append(_line(store, sub, item, invoice_id, start, end, quantity=item["quantity"] or 0, trial=trial))
    total = sum(line["amount"] for line in lines)
    invoice = template("invoice")
    sequence = customer["next_invoice_sequence"]
    customer["next_invoice_sequence"] = sequence + 1
    invoice.update({
        "id": invoice_id, "account_country": "US", "account_name": "billing-sync emulator", "account_tax_ids": None,
        "amount_due": total, "amount_paid": 0, "amount_remaining": total, "amount_shipping": 0, "application": None,
        "attempt_count": 0, "attempted": False, "auto_advance": True,
        "automatic_tax": {"enabled": False, "liability": None, "status": None, "disabled_reason": None,
                          "provider": None},
        "billing_reason": reason, "collection_method": "charge_automatically", "created": now,
        "currency": sub["currency"], "custom_fields": None, "customer": customer["id"],
        "customer_address": customer["address"], "customer_email": customer["email"],
        "customer_name": customer["name"], "customer_phone": customer["phone"],
        "customer_shipping": customer["shipping"], "customer_tax_exempt": customer["tax_exempt"],
        "customer_tax_ids": [], "default_payment_method": None, "default_source": None, "default_tax_rates": [],
        "description": None, "discounts": [], "due_date": None, "effective_at": now, "ending_balance": 0,
        "footer": None, "from_invoice": None, "hosted_invoice_url": f"https://invoice.stripe.com/i/emulator/{invoice_id}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/emulator/{invoice_id}/pdf", "issuer": {"type": "self"},
        "last_finalization_error": None, "latest_revision": None,
        "lines": {"object": "list", "data": lines, "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
        "livemode": False, "metadata": {}, "next_payment_attempt": None,
        "number": f"{customer['invoice_prefix']}-{sequence:04d}", "on_behalf_of": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": start if usage_from is not None else now, "period_start": usage_from if usage_from is not None else now,
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0, "receipt_number": None,
        "rendering": None, "shipping_cost": None, "shipping_details": None, "starting_balance": 0,
        "statement_descriptor": None, "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None, "paid_at": None, "voided_at": None},
        "subscription": sub["id"], "subtotal": total, "subtotal_excluding_tax": total,
        "test_clock": customer["test_clock"], "total": total, "total_discount_amounts": [], "total_excluding_tax": total,
        "webhooks_delivered_at": None, "automatically_finalizes_at": None, "total_pretax_credit_amounts": [],
        "total_taxes": [], "amount_overpaid": 0, "customer_account": None,
        "parent": {"quote_details": None, "type": "subscription_details",
                   "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]}},
    })
    store.add(invoice)
    sub["_invoices"].append(invoice_id)
    store.emit("invoice.created", store.render(invoice))
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = now
    store.emit("invoice.finalized", store.render(invoice))
    sub["latest_invoice"] = invoice_id
    return invoice


def pay_invoice(store: Store, invoice: dict, now: int, pm: dict | None) -> bool:
    """One payment attempt; True when the invoice ends up paid."""
    from .resources.payment_methods import charge_succeeds

    if invoice["amount_due"] > 0:
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        if not charge_succeeds(pm):
            store.emit("invoice.payment_failed", store.render(invoice))
            return False
    invoice.update({"status": "paid", "amount_paid": invoice["amount_due"], "amount_remaining": 0,
                    "next_payment_attempt": None, "attempted": True, "auto_advance": False})
    invoice["status_transitions"]["paid_at"] = now
    body = store.render(invoice)
    store.emit("invoice.paid", body)
    store.emit("invoice.payment_succeeded", body)
    return True


def open_invoices(store: Store, sub: dict) -> list[dict]:
    invoices = (store.get("invoice", invoice_id) for invoice_id in sub["_invoices"])
    return [i for i in invoices if i is not None and i["status"] == "open"]


# -- state changes ----------------------------------------------------------------------------

def _changed(store: Store, sub: dict, before: dict, type_: str = "customer.subscription.updated") -> None:
    store.emit_update(type_, before, render_subscription(store, sub))
    store.touch(sub["customer"])


def cancel_now(store: Store, sub: dict, now: int, *, reason: str = "cancellation_requested") -> None:
    sub.update({"status": "canceled", "canceled_at": sub["canceled_at"] or now, "ended_at": now,
                "cancel_at_period_end": False})
    sub["cancellation_details"]["reason"] = reason
    for invoice in open_invoices(store, sub):
        invoice["next_payment_attempt"] = None
        invoice["auto_advance"] = False
    store.emit("customer.subscription.deleted", render_subscription(store, sub))
    store.touch(sub["customer"])


def settle_after_payment(store: Store, sub: dict, before: dict) -> None:
    """A paid invoice brings past_due / incomplete back to active once nothing else is owed."""
    if sub["status"] in ("past_due", "incomplete") and not open_invoices(store, sub):
        sub["status"] = "active"
    _changed(store, sub, before)


def _charge_cycle(store: Store, sub: dict, invoice: dict, now: int) -> None:
    if pay_invoice(store, invoice, now, payment_method_for(store, sub)):
        if not open_invoices(store, sub):
            sub["status"] = "active"
    else:
        sub["status"] = "past_due"
        invoice["_dunning_start"] = now
        invoice["_retries"] = 0
        invoice["next_payment_attempt"] = _retry_at(store, invoice)


def _retry_at(store: Store, invoice: dict) -> int | None:
    from_faults = store.faults.dunning_days if getattr(store, "faults", None) else 14
    index = invoice["_retries"]
    if index >= len(RETRY_FRACTIONS):
        return None
    return invoice["_dunning_start"] + max(1, int(from_faults * DAY * RETRY_FRACTIONS[index]))


def renew(store: Store, sub: dict, now: int) -> None:
    before = render_subscription(store, sub)
    previous_start = sub["_period_start"]
    end = next_period_end(store, sub, now)
    set_period(store, sub, now, end)
    invoice = create_invoice(store, sub, "subscription_cycle", now, now, end, usage_from=previous_start)
    _charge_cycle(store, sub, invoice, now)
    _changed(store, sub, before)


def end_trial(store: Store, sub: dict, now: int) -> None:
    missing = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
    if (missing != "create_invoice" and sub["collection_method"] == "charge_automatically"
            and payment_method_for(store, sub) is None):
        if missing == "cancel":
            cancel_now(store, sub, now)
        else:
            pause(store, sub)
        return
    before = render_subscription(store, sub)
    sub["billing_cycle_anchor"] = now
    sub["trial_end"] = now
    end = next_period_end(store, sub, now)
    set_period(store, sub, now, end)
    sub["status"] = "active"
    invoice = create_invoice(store, sub, "subscription_cycle", now, now, end)
    _charge_cycle(store, sub, invoice, now)
    _changed(store, sub, before)


def pause(store: Store, sub: dict) -> None:
    """No invoice, no renewals, no entitlements until `POST /v1/subscriptions/{id}/resume`."""
    before = render_subscription(store, sub)
    sub["status"] = "paused"
    _changed(store, sub, before)
    store.emit("customer.subscription.paused", render_subscription(store, sub))


def resume(store: Store, sub: dict, now: int, *, reset_anchor: bool) -> None:
    """A new period from now, invoiced and charged (`billing_cycle_anchor=now`), or the period
    around now on the old anchor with nothing invoiced (`unchanged`: prorations are not computed)."""
    before = render_subscription(store, sub)
    sub["status"] = "active"
    if reset_anchor:
        sub["billing_cycle_anchor"] = now
        end = next_period_end(store, sub, now)
        set_period(store, sub, now, end)
        _charge_cycle(store, sub, create_invoice(store, sub, "subscription_update", now, now, end), now)
    else:
        start = period_start_around(store, sub, now)
        set_period(store, sub, start, next_period_end(store, sub, start))
    _changed(store, sub, before)
    store.emit("customer.subscription.resumed", render_subscription(store, sub))


def retry_payment(store: Store, sub: dict, invoice: dict, now: int) -> None:
    before = render_subscription(store, sub)
    invoice["_retries"] += 1
    if pay_invoice(store, invoice, now, payment_method_for(store, sub)):
        settle_after_payment(store, sub, before)
        return
    invoice["next_payment_attempt"] = _retry_at(store, invoice)
    if invoice["next_payment_attempt"] is None:
        cancel_now(store, sub, now, reason="payment_failed")


def expire_incomplete(store: Store, sub: dict, now: int) -> None:
    for invoice in open_invoices(store, sub):
        invoice["status"] = "void"
        invoice["status_transitions"]["voided_at"] = now
        invoice["next_payment_attempt"] = None
        invoice["amount_remaining"] = 0
        store.emit("invoice.voided", store.render(invoice))
    sub.update({"status": "incomplete_expired", "ended_at": now})
    store.emit("customer.subscription.deleted", render_subscription(store, sub))
    store.touch(sub["customer"])


def trial_will_end(store: Store, sub: dict, now: int) -> None:
    sub["_trial_will_end_sent"] = True
    store.emit("customer.subscription.trial_will_end", render_subscription(store, sub))


# -- the scheduler ----------------------------------------------------------------------------

def _due(store: Store, sub: dict):
    """(time, order, action) of each transition this subscription is waiting for."""
    status = sub["status"]
    if status in ENDED:
        return
    if status == "incomplete":
        yield sub["created"] + INCOMPLETE_EXPIRY, 5, expire_incomplete
        return
    if status == "trialing" and not sub.get("_trial_will_end_sent"):
        yield max(sub["created"], sub["trial_end"] - TRIAL_WILL_END_AHEAD), 0, trial_will_end
    if sub["cancel_at"]:
        yield sub["cancel_at"], 1, lambda s, sb, now: cancel_now(s, sb, now)
    if status == "paused":
        return   # nothing is billed until the subscription is resumed
    if status == "trialing":
        yield sub["trial_end"], 2, end_trial
    else:
        yield sub["_period_end"], 3, renew
    for invoice in open_invoices(store, sub):
        if invoice.get("next_payment_attempt"):
            yield invoice["next_payment_attempt"], 4, lambda s, sb, now, inv=invoice: retry_payment(s, sb, inv, now)


def subscriptions_on(store: Store, clock_id: str | None) -> list[dict]:
    """The subscriptions of customers on test clock `clock_id` (None: customers in real time)."""
    customers = {c["id"] for c in store.all("customer") if c.get("test_clock") == clock_id}
    return [s for s in store.all("subscription") if s["customer"] in customers]


def run_due(store: Store, clock_id: str | None, until: int) -> int:
    """Apply every transition due by `until` for the subscriptions of customers on `clock_id`
    (None: customers in real time), earliest first. Returns how many were applied."""
    subs = subscriptions_on(store, clock_id)   # transitions never add subscriptions or move customers
    applied = 0
    while True:
        best = None
        for sub in subs:
            for when, order, action in _due(store, sub):
                if when <= until and (best is None or (when, order) < best[:2]):
                    best = (when, order, action, sub)
        if best is None:
            return applied
        when, _, action, sub = best
        action(store, sub, when)
        applied += 1
        if applied > 10000:
            raise RuntimeError("runaway billing schedule")
