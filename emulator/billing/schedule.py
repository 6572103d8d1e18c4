"""What each subscription is waiting for, and applying it in time order (`run_due`)."""
from __future__ import annotations

from ..store import Store
from . import DAY, ENDED
from .invoicing import open_invoices
from .lifecycle import cancel_now, end_trial, expire_incomplete, renew, retry_payment, trial_will_end

INCOMPLETE_EXPIRY = 23 * 3600
TRIAL_WILL_END_AHEAD = 3 * DAY


def due(store: Store, sub: dict):
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
            for when, order, action in due(store, sub):
                if when <= until and (best is None or (when, order) < best[:2]):
                    best = (when, order, action, sub)
        if best is None:
            return applied
        when, _, action, sub = best
        action(store, sub, when)
        applied += 1
        if applied > 10000:
            raise RuntimeError("runaway billing schedule")
