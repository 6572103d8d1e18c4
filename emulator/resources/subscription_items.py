"""Subscription items: adding, changing and removing them (in place, same `si_` ids), with their
prorations (billing/prorations.py), and the `/v1/subscription_items` routes."""
from __future__ import annotations

from .. import billing
from ..billing import invoicing, lifecycle, payments, periods, prorations, render
from ..errors import invalid
from ..forms import as_bool, as_dict, merge_metadata, require
from ..ids import new_id
from ..lists import PAGE_PARAMS, page
from ..router import Request, route
from ..shapes import deleted, template
from .subscription_params import check_compatible, price_for_item, quantity_of


def new_item(req: Request, sub: dict, price: dict, quantity, metadata, now: int) -> dict:
    item = template("subscription_item")
    item.update({"id": new_id("si"), "created": now, "discounts": [], "metadata": metadata, "price": price["id"],
                 "quantity": quantity, "subscription": sub["id"], "tax_rates": [], "billing_thresholds": None,
                 "current_period_start": sub.get("_period_start"), "current_period_end": sub.get("_period_end")})
    item.pop("plan")
    req.store.add(item)
    sub["_items"].append(item["id"])
    return item


def update_items(req: Request, sub: dict, specs, now: int, proration: dict) -> None:
    """Apply item specs (`items[n][…]`), prorated as `proration` (the request's
    `proration_behavior` and `proration_date`) says."""
    billed_before = prorations.billed_items(req.store, sub)
    _apply_items(req, sub, specs, now)
    _prorate(req, sub, billed_before, now, proration)


def _prorate(req: Request, sub: dict, billed_before: dict, now: int, proration: dict) -> None:
    behaviour = proration.get("proration_behavior") or "create_prorations"
    if behaviour == "none":
        return
    at = prorations.proration_date(sub, proration.get("proration_date"), "proration_date", now)
    after = prorations.billed_items(req.store, sub)
    changes = {item_id: (billed_before.get(item_id), after.get(item_id)) for item_id in {*billed_before, *after}}
    lines = prorations.proration_lines(req.store, sub, changes, at)
    if not lines:
        return
    if behaviour == "always_invoice":
        invoice = invoicing.create_invoice(req.store, sub, "subscription_update", now, now, now, lines=lines)
        payments.pay_invoice(req.store, invoice, now, payments.payment_method_for(req.store, sub))
    else:
        sub.setdefault("_pending_prorations", []).extend(lines)


def _apply_items(req: Request, sub: dict, specs, now: int) -> None:
    if not isinstance(specs, list):
        raise invalid("Invalid array", param="items")
    current = {i["id"]: i for i in periods.items_of(req.store, sub)}
    plan: dict[str, tuple] = {k: (req.store.get("price", i["price"]), i["quantity"]) for k, i in current.items()}
    additions, deletions, changes = [], set(), {}
    for n, spec in enumerate(specs):
        spec = as_dict(spec, f"items[{n}]")
        param = f"items[{n}]"
        if spec.get("id"):
            item = current.get(spec["id"])
            if item is None:
                raise invalid(f"Subscription item {spec['id']} does not belong to this subscription.",
                              param=f"{param}[id]", code="resource_missing")
            if as_bool(spec.get("deleted", False), f"{param}[deleted]"):
                deletions.add(item["id"])
                plan.pop(item["id"], None)
                continue
            price = price_for_item(req, spec, param) if spec.get("price") or spec.get("plan") else \
                req.store.get("price", item["price"])
            quantity = quantity_of(spec, price, param) if "quantity" in spec else (
                item["quantity"] if price["recurring"]["usage_type"] == "licensed" else None)
            if price["recurring"]["usage_type"] == "licensed" and quantity is None:
                quantity = 1
            changes[item["id"]] = (price, quantity, spec.get("metadata"))
            plan[item["id"]] = (price, quantity)
        else:
            price = price_for_item(req, spec, param)
            quantity = quantity_of(spec, price, param)
            additions.append((price, quantity, merge_metadata({}, spec.get("metadata", {}))))
    prices = [p for p, _ in plan.values()] + [p for p, _, _ in additions]
    if not prices:
        raise invalid("A subscription must have at least one active item.", param="items")
    check_compatible(prices)
    old = req.store.get("price", next(iter(current.values()))["price"])["recurring"]
    if (old["interval"], old["interval_count"]) != (prices[0]["recurring"]["interval"],
                                                    prices[0]["recurring"]["interval_count"]):
        raise invalid("Changing the billing interval of a classic subscription is not supported by the emulator.",
                      param="items")
    for item_id in deletions:
        current[item_id]["_deleted"] = True
    for item_id, (price, quantity, metadata) in changes.items():
        item = current[item_id]
        item["price"], item["quantity"] = price["id"], quantity
        if metadata is not None:
            item["metadata"] = merge_metadata(item["metadata"], metadata)
    for price, quantity, metadata in additions:
        new_item(req, sub, price, quantity, metadata, now)


@route("GET", "/v1/subscription_items", params={"subscription", *PAGE_PARAMS})
def list_items(req: Request):
    require(req.params, "subscription")
    sub = req.store.require("subscription", req.params["subscription"], param="subscription")
    body = page(req.store, periods.items_of(req.store, sub), req.params,
                f"/v1/subscription_items?subscription={sub['id']}", "subscription_item")
    return body


@route("GET", "/v1/subscription_items/{item_id}")
def retrieve_item(req: Request, item_id: str):
    return req.store.render(req.store.require("subscription_item", item_id))


def _sub_of_item(req: Request, item: dict) -> dict:
    sub = req.store.get("subscription", item["subscription"])
    if sub["status"] in billing.ENDED:
        raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
    return sub


@route("POST", "/v1/subscription_items", params={"subscription", "price", "quantity", "metadata", "proration_behavior",
                                                 "proration_date", "payment_behavior", "price_data", "tax_rates",
                                                 "discounts", "billing_thresholds"})
def create_item(req: Request):
    require(req.params, "subscription")
    sub = req.store.require("subscription", req.params["subscription"], param="subscription")
    spec = {k: req.params[k] for k in ("price", "quantity", "metadata") if k in req.params}
    return _mutate_items(req, sub, [spec], pick_new=True)


@route("POST", "/v1/subscription_items/{item_id}", params={"price", "quantity", "metadata", "proration_behavior",
                                                           "proration_date", "payment_behavior", "price_data",
                                                           "tax_rates", "discounts", "billing_thresholds",
                                                           "off_session"})
def update_item(req: Request, item_id: str):
    item = req.store.require("subscription_item", item_id)
    sub = _sub_of_item(req, item)
    spec = {"id": item_id, **{k: req.params[k] for k in ("price", "quantity", "metadata") if k in req.params}}
    return _mutate_items(req, sub, [spec])


@route("DELETE", "/v1/subscription_items/{item_id}", params={"clear_usage", "proration_behavior", "proration_date"})
def delete_item(req: Request, item_id: str):
    item = req.store.require("subscription_item", item_id)
    sub = _sub_of_item(req, item)
    _mutate_items(req, sub, [{"id": item_id, "deleted": "true"}])
    return deleted("subscription_item", item_id)


def _mutate_items(req: Request, sub: dict, specs: list[dict], *, pick_new: bool = False) -> dict:
    now = req.store.customer_now(req.store.get("customer", sub["customer"]))
    before = render.render_subscription(req.store, sub)
    known = set(sub["_items"])
    update_items(req, sub, specs, now, req.params)
    lifecycle.changed(req.store, sub, before)
    item_id = next((i for i in sub["_items"] if i not in known), None) if pick_new else specs[0].get("id")
    item = req.store.get("subscription_item", item_id)
    return req.store.render(item) if item and not item.get("_deleted") else {}
