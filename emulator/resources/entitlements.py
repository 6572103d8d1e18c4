"""Stripe Entitlements: features, and each customer's active entitlements.

A customer's active entitlements are the active features attached to the products of its
active, trialing and past_due subscriptions. Whenever that set changes (a subscription starts or
ends, a feature is attached to or detached from a subscribed product) we emit
`entitlements.active_entitlement_summary.updated`, as Stripe does.
"""
from __future__ import annotations

from .. import billing
from ..billing import periods
from ..errors import invalid
from ..forms import as_bool, as_int, merge_metadata, require
from ..ids import random_part
from ..lists import PAGE_PARAMS, page
from ..router import Request, route
from ..shapes import template
from .catalog import product_feature_ids

# -- features ---------------------------------------------------------------------------------

@route("POST", "/v1/entitlements/features", params={"name", "lookup_key", "metadata"})
def create_feature(req: Request):
    require(req.params, "name", "lookup_key")
    key = req.params["lookup_key"]
    if any(f["lookup_key"] == key for f in req.store.all("entitlements.feature")):
        raise invalid(f"A feature with lookup_key `{key}` already exists.", param="lookup_key")
    feature = template("entitlements.feature")
    feature.update({"id": "feat_test_" + random_part(32), "active": True, "livemode": False, "lookup_key": key,
                    "metadata": merge_metadata({}, req.params.get("metadata", {})), "name": req.params["name"]})
    req.store.add(feature)
    return req.store.render(feature)


@route("GET", "/v1/entitlements/features", params={"lookup_key", "archived", *PAGE_PARAMS})
def list_features(req: Request):
    objs = req.store.all("entitlements.feature")
    if "lookup_key" in req.params:
        objs = [f for f in objs if f["lookup_key"] == req.params["lookup_key"]]
    archived = as_bool(req.params.get("archived", False), "archived")
    objs = [f for f in objs if f["active"] != archived]
    return page(req.store, objs, req.params, "/v1/entitlements/features", "entitlements.feature")


@route("GET", "/v1/entitlements/features/{feature_id}")
def retrieve_feature(req: Request, feature_id: str):
    return req.store.render(req.store.require("entitlements.feature", feature_id))


@route("POST", "/v1/entitlements/features/{feature_id}", params={"name", "active", "metadata"})
def update_feature(req: Request, feature_id: str):
    feature = req.store.require("entitlements.feature", feature_id)
    if "name" in req.params:
        feature["name"] = req.params["name"]
    if "metadata" in req.params:
        feature["metadata"] = merge_metadata(feature["metadata"], req.params["metadata"])
    if "active" in req.params:
        active = as_bool(req.params["active"], "active")
        if active != feature["active"]:
            feature["active"] = active
            for customer in req.store.entitlements:   # archiving a feature removes it everywhere
                req.store.touch(customer)
    return req.store.render(feature)


# -- active entitlements ----------------------------------------------------------------------

def active_feature_ids(store, customer_id: str) -> list[str]:
    seen: list[str] = []
    subs = [s for s in store.all("subscription") if s["customer"] == customer_id and s["status"] in billing.ENTITLED]
    for sub in sorted(subs, key=lambda s: s["_seq"]):
        for product_id in sorted(periods.product_ids(store, sub)):
            for feature_id in product_feature_ids(store, product_id):
                if feature_id not in seen:
                    seen.append(feature_id)
    return seen


def _entitlement(store, customer_id: str, feature_id: str, *, expand_feature: bool = False) -> dict:
    key = (customer_id, feature_id)
    if key not in store.entitlement_ids:
        store.entitlement_ids[key] = "ent_test_" + random_part(32)
    feature = store.get("entitlements.feature", feature_id)
    body = template("entitlements.active_entitlement")
    body.update({"id": store.entitlement_ids[key], "feature": store.render(feature) if expand_feature else feature_id,
                 "livemode": False, "lookup_key": feature["lookup_key"]})
    return body


def summary(store, customer_id: str, feature_ids) -> dict:
    body = template("entitlements.active_entitlement_summary")
    body.update({"customer": customer_id, "livemode": False, "entitlements": {
        "object": "list", "has_more": False, "url": f"/v1/customer/{customer_id}/entitlements",
        "data": [_entitlement(store, customer_id, f, expand_feature=True) for f in feature_ids]}})
    return body


def refresh(store, customer_ids) -> None:
    """Emit a summary event for each customer whose set of active features changed."""
    for customer_id in sorted(customer_ids):
        current = tuple(active_feature_ids(store, customer_id))
        previous = store.entitlements.get(customer_id, ())
        if set(current) == set(previous):
            continue
        store.entitlements[customer_id] = current
        before = summary(store, customer_id, previous)
        store.emit("entitlements.active_entitlement_summary.updated", summary(store, customer_id, current),
                   {"entitlements": before["entitlements"]})


@route("GET", "/v1/entitlements/active_entitlements", params={"customer", *PAGE_PARAMS})
def list_active(req: Request):
    require(req.params, "customer")
    customer_id = req.params["customer"]
    req.store.require("customer", customer_id, param="customer")
    data = [_entitlement(req.store, customer_id, f) for f in active_feature_ids(req.store, customer_id)]
    return _page_plain(req, data, "/v1/entitlements/active_entitlements")


def _page_plain(req: Request, data: list[dict], url: str) -> dict:
    """Pages over computed objects (they have no creation time): stable order, id cursors."""
    limit = as_int(req.params.get("limit", 10), "limit", minimum=1, maximum=100)
    ids = [d["id"] for d in data]
    start, end = 0, len(data)
    if req.params.get("starting_after"):
        cursor = req.params["starting_after"]
        if cursor not in ids:
            raise invalid(f"No such active entitlement: '{cursor}'", param="starting_after", code="resource_missing")
        start = ids.index(cursor) + 1
        chunk = data[start:start + limit]
        has_more = start + limit < len(data)
    elif req.params.get("ending_before"):
        cursor = req.params["ending_before"]
        if cursor not in ids:
            raise invalid(f"No such active entitlement: '{cursor}'", param="ending_before", code="resource_missing")
        end = ids.index(cursor)
        chunk = data[max(0, end - limit):end]
        has_more = end - limit > 0
    else:
        chunk, has_more = data[:limit], len(data) > limit
    return {"object": "list", "data": chunk, "has_more": has_more, "url": url}


@route("GET", "/v1/entitlements/active_entitlements/{entitlement_id}")
def retrieve_active(req: Request, entitlement_id: str):
    for (customer_id, feature_id), ent_id in req.store.entitlement_ids.items():
        if ent_id == entitlement_id and feature_id in active_feature_ids(req.store, customer_id):
            return _entitlement(req.store, customer_id, feature_id)
    raise invalid(f"No such active entitlement: '{entitlement_id}'", param="id", code="resource_missing", status=404)


