"""Prorations: what a change of price or quantity in the middle of a period costs.

As Stripe computes them: for each changed item, a credit for the unused time on what it was and a
charge for the remaining time on what it becomes, each the item's period amount times the share
of the period left after the proration date (to the second), rounded to the cent. The same lines
serve an invoice preview (`POST /v1/invoices/create_preview`) and the change itself, so a change
sent with the preview's `proration_date` is billed exactly what the preview showed: with
`create_prorations` (the default) on the next renewal invoice, with `always_invoice` at once.
"""
from __future__ import annotations

from datetime import UTC, datetime

from ..errors import invalid
from ..forms import as_int
from ..store import Store
from .invoicing import line
from .periods import items_of

# an item as billed: (price id, quantity), or None when it is not on the subscription
Billed = tuple[str, int] | None


def proration_date(sub: dict, value, param: str, now: int) -> int:
    """When a change is prorated from: `value` (a timestamp in the current period), else now."""
    if value in (None, ""):
        return now
    at = as_int(value, param)
    if not sub["_period_start"] <= at <= sub["_period_end"]:
        raise invalid("The proration_date must be within the subscription's current billing period.", param=param)
    return at


def share_left(sub: dict, at: int) -> float:
    start, end = sub["_period_start"], sub["_period_end"]
    if end <= start:
        return 0.0
    return min(max((end - at) / (end - start), 0.0), 1.0)


def proration_lines(store: Store, sub: dict, changes: dict[str, tuple[Billed, Billed]], at: int) -> list[dict]:
    """The proration lines for `changes` (item id → (before, after)) made at `at`; none while
    trialing, for metered items or when nothing billed changed."""
    if sub["status"] not in ("active", "past_due"):
        return []
    share = share_left(sub, at)
    when = datetime.fromtimestamp(at, UTC).strftime("%d %b %Y")
    lines = []
    for item_id, (before, after) in changes.items():
        if before == after:
            continue
        for billed, sign, words in ((before, -1, "Unused time on"), (after, 1, "Remaining time on")):
            if billed is None:
                continue
            price_id, quantity = billed
            price = store.stored("price", price_id)
            if (price["recurring"] or {}).get("usage_type") == "metered":
                continue
            amount = sign * round((price["unit_amount"] or 0) * quantity * share)
            product = store.get("product", price["product"])
            name = product["name"] if product else price_id
            lines.append(line(store, sub, {"id": item_id, "price": price_id}, "", at, sub["_period_end"],
                              quantity=quantity, amount=amount, proration=True,
                              description=f"{words} {quantity} × {name} after {when}"))
    return lines


def billed_items(store: Store, sub: dict) -> dict[str, tuple[str, int]]:
    """What each live item bills now: item id → (price id, quantity)."""
    return {item["id"]: (item["price"], item["quantity"] or 0) for item in items_of(store, sub)}
