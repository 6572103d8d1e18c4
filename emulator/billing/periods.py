"""Billing periods: boundaries counted from the anchor, and a subscription's live items."""
from __future__ import annotations

import calendar
from datetime import UTC, datetime

from ..store import Store
from . import DAY


def boundary(anchor: int, interval: str, count: int, k: int) -> int:
    """The k-th period boundary after `anchor` (months clamp to the anchor's day, like Stripe)."""
    if interval == "day":
        return anchor + DAY * count * k
    if interval == "week":
        return anchor + 7 * DAY * count * k
    months = count * k * (12 if interval == "year" else 1)
    start = datetime.fromtimestamp(anchor, UTC)
    total = start.month - 1 + months
    year, month = start.year + total // 12, total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def items_of(store: Store, sub: dict) -> list[dict]:
    """The live items, in the order they were added (ids are indexed on the subscription)."""
    items = (store.get("subscription_item", item_id) for item_id in sub["_items"])
    return [i for i in items if i is not None and not i.get("_deleted")]


def recurring_of(store: Store, sub: dict) -> dict:
    return store.stored("price", items_of(store, sub)[0]["price"])["recurring"]


def product_ids(store: Store, sub: dict) -> set[str]:
    return {store.stored("price", i["price"])["product"] for i in items_of(store, sub)}


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
    anchor, interval, count = sub["billing_cycle_anchor"], recurring["interval"], recurring["interval_count"]
    while (end := boundary(anchor, interval, count, k)) <= start:
        k += 1
    return end

