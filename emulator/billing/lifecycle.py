"""State changes of a subscription: cancel, renew, end a trial, pause, resume, retry a payment,
expire an incomplete one. Each emits the events Stripe sends for it."""
from __future__ import annotations

from ..store import Store
from .invoicing import create_invoice, open_invoices
from .payments import cancel_payment_intent, pay_invoice, payment_method_for
from .periods import next_period_end, period_start_around, set_period
from .render import render_subscription


def changed(store: Store, sub: dict, before: dict, type_: str = "customer.subscription.updated") -> None:
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
    changed(store, sub, before)


def charge_cycle(store: Store, sub: dict, invoice: dict, now: int) -> None:
    """Charge a period's invoice: active when paid, past_due (retries scheduled) when not."""
    if pay_invoice(store, invoice, now, payment_method_for(store, sub), retry=True):
        if not open_invoices(store, sub):
            sub["status"] = "active"
    else:
        sub["status"] = "past_due"

def renew(store: Store, sub: dict, now: int) -> None:
    before = render_subscription(store, sub)
    previous_start = sub["_period_start"]
    end = next_period_end(store, sub, now)
    set_period(store, sub, now, end)
    invoice = create_invoice(store, sub, "subscription_cycle", now, now, end, usage_from=previous_start)
    charge_cycle(store, sub, invoice, now)
    changed(store, sub, before)


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
    charge_cycle(store, sub, invoice, now)
    changed(store, sub, before)


def pause(store: Store, sub: dict) -> None:
    """No invoice, no renewals, no entitlements until `POST /v1/subscriptions/{id}/resume`."""
    before = render_subscription(store, sub)
    sub["status"] = "paused"
    changed(store, sub, before)
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
        charge_cycle(store, sub, create_invoice(store, sub, "subscription_update", now, now, end), now)
    else:
        start = period_start_around(store, sub, now)
        set_period(store, sub, start, next_period_end(store, sub, start))
    changed(store, sub, before)
    store.emit("customer.subscription.resumed", render_subscription(store, sub))


def retry_payment(store: Store, sub: dict, invoice: dict, now: int) -> None:
    before = render_subscription(store, sub)
    invoice["_retries"] += 1
    if pay_invoice(store, invoice, now, payment_method_for(store, sub), retry=True):
        settle_after_payment(store, sub, before)
        return
    if invoice["next_payment_attempt"] is None:
        cancel_now(store, sub, now, reason="payment_failed")


def expire_incomplete(store: Store, sub: dict, now: int) -> None:
    for invoice in open_invoices(store, sub):
        invoice["status"] = "void"
        invoice["status_transitions"]["voided_at"] = now
        invoice["next_payment_attempt"] = None
        invoice["amount_remaining"] = 0
        store.emit("invoice.voided", store.render(invoice))
        cancel_payment_intent(store, invoice, now)
    sub.update({"status": "incomplete_expired", "ended_at": now})
    store.emit("customer.subscription.deleted", render_subscription(store, sub))
    store.touch(sub["customer"])


def trial_will_end(store: Store, sub: dict, now: int) -> None:
    sub["_trial_will_end_sent"] = True
    store.emit("customer.subscription.trial_will_end", render_subscription(store, sub))
