"""Products, prices and the features attached to products (Stripe Entitlements).

Prices carry lookup keys (unique across the account; `transfer_lookup_key=true` moves a key
from the price that holds it); products may be created with their own id. Attaching a feature to
a product, or detaching it, changes the active entitlements of every customer subscribed to it.
"""
from __future__ import annotations

from .. import billing
from ..billing import periods
from ..errors import invalid
from ..forms import (
    as_bool,
    as_dict,
    as_hash_list,
    as_int,
    as_str_list,
    merge_metadata,
    non_empty_str,
    nullable,
    require,
)
from ..ids import new_id
from ..lists import CREATED, PAGE_PARAMS, created_filter, page
from ..router import Request, route
from ..search import SEARCH_PARAMS, search
from ..shapes import template
from ..store import public

PRODUCT_PARAMS = {"id", "name", "active", "description", "metadata", "images", "marketing_features[name]",
                  "package_dimensions", "shippable", "statement_descriptor", "tax_code", "unit_label", "url",
                  "tax_details"}
DEFAULT_PRICE_DATA = {
    *(f"default_price_data[{key}]" for key in ("currency", "currency_options", "custom_unit_amount", "metadata",
                                                "tax_behavior", "unit_amount", "unit_amount_decimal")),
    "default_price_data[recurring][interval]", "default_price_data[recurring][interval_count]"}


# -- products ---------------------------------------------------------------------------------

def new_product(req: Request, params: dict) -> dict:
    require(params, "name")
    product_id = params.get("id") or new_id("prod")
    if req.store.find(product_id) is not None:
        raise invalid("Product already exists.", param="id", code="resource_already_exists")
    now = req.store.now()
    product = template("product")
    product.update({
        "id": product_id, "active": True, "created": now, "updated": now, "default_price": None,
        "description": None, "images": [], "livemode": False, "marketing_features": [], "metadata": {},
        "name": params["name"], "package_dimensions": None, "shippable": None, "statement_descriptor": None,
        "tax_code": None, "unit_label": None, "url": None, "type": "service",
    })
    _apply_product(product, params)
    req.store.add(product)
    req.store.emit("product.created", req.store.render(product))
    return product


def _apply_product(product: dict, params: dict) -> None:
    for key in ("name", "description", "statement_descriptor", "unit_label", "url", "tax_code"):
        if key in params:
            product[key] = nullable(params[key])
    if "active" in params:
        product["active"] = as_bool(params["active"], "active")
    if "shippable" in params:
        product["shippable"] = as_bool(params["shippable"], "shippable")
    if "metadata" in params:
        product["metadata"] = merge_metadata(product["metadata"], params["metadata"])
    if "images" in params:
        product["images"] = as_str_list(nullable(params["images"]), "images")
    if "marketing_features" in params:
        features = as_hash_list(params["marketing_features"], "marketing_features")
        product["marketing_features"] = [{"name": non_empty_str(f.get("name"), f"marketing_features[{i}][name]")}
                                         for i, f in enumerate(features)]


@route("POST", "/v1/products", params=PRODUCT_PARAMS | DEFAULT_PRICE_DATA)
def create_product(req: Request):
    product = new_product(req, req.params)
    if "default_price_data" in req.params:
        data = as_dict(req.params["default_price_data"], "default_price_data")
        price = new_price(req, {**data, "product": product["id"]})
        before = req.store.render(product)
        product["default_price"] = price["id"]
        req.store.emit_update("product.updated", before, req.store.render(product))
    return req.store.render(product)


@route("GET", "/v1/products/{product_id}")
def retrieve_product(req: Request, product_id: str):
    return req.store.render(req.store.require("product", product_id))


@route("POST", "/v1/products/{product_id}", params=PRODUCT_PARAMS - {"id"} | {"default_price"})
def update_product(req: Request, product_id: str):
    product = req.store.require("product", product_id)
    before = req.store.render(product)
    _apply_product(product, req.params)
    if "default_price" in req.params:
        price_id = nullable(req.params["default_price"])
        if price_id:
            price = req.store.require("price", price_id, param="default_price")
            if price["product"] != product_id:
                raise invalid("The default price must belong to this product.", param="default_price")
        product["default_price"] = price_id
    after = req.store.render(product)
    if after != before:
        product["updated"] = req.store.now()
        after = req.store.render(product)
        req.store.emit_update("product.updated", before, after)
    return after


@route("DELETE", "/v1/products/{product_id}")
def delete_product(req: Request, product_id: str):
    product = req.store.require("product", product_id)
    if any(p["product"] == product_id for p in req.store.all("price")):
        raise invalid("This product cannot be deleted because it has one or more user-created prices.",
                      param="id")
    return req.store.delete(product, "product.deleted")


@route("GET", "/v1/products", params={"active", "ids", "shippable", "url", *CREATED, *PAGE_PARAMS})
def list_products(req: Request):
    objs = req.store.live("product")
    if "active" in req.params:
        active = as_bool(req.params["active"], "active")
        objs = [p for p in objs if p["active"] == active]
    if "ids" in req.params:
        ids = set(as_str_list(req.params["ids"], "ids"))
        objs = [p for p in objs if p["id"] in ids]
    objs = created_filter(objs, req.params)
    return page(req.store, objs, req.params, "/v1/products", "product")


@route("GET", "/v1/products/search", params=SEARCH_PARAMS)
def search_products(req: Request):
    return search(req.store, req.store.live("product"), req.params, "products")


# -- prices -----------------------------------------------------------------------------------

PRICE_PARAMS = {"product", *(f"product_data[{key}]" for key in ("active", "id", "metadata", "name",
                                                                  "statement_descriptor", "tax_code", "unit_label")),
                "currency", "unit_amount", "unit_amount_decimal",
                *(f"recurring[{key}]" for key in ("interval", "interval_count", "meter", "trial_period_days",
                                                   "usage_type")),
                "lookup_key", "transfer_lookup_key", "nickname", "metadata", "active", "billing_scheme",
                "tax_behavior", "custom_unit_amount", "tiers", "tiers_mode", "transform_quantity",
                "currency_options"}
INTERVALS = ("day", "week", "month", "year")


def new_price(req: Request, params: dict) -> dict:
    require(params, "currency")
    if params.get("product") and params.get("product_data"):
        raise invalid("You may only specify one of these parameters: product, product_data.", param="product")
    if params.get("product_data"):
        product = new_product(req, as_dict(params["product_data"], "product_data"))
    else:
        require(params, "product")
        product = req.store.require("product", params["product"], param="product")
    price = template("price")
    price.update({
        "id": new_id("price", 24), "active": True, "billing_scheme": "per_unit", "created": req.store.now(),
        "currency": str(params["currency"]).lower(), "custom_unit_amount": None, "livemode": False,
        "lookup_key": None, "metadata": {}, "nickname": nullable(params.get("nickname")), "product": product["id"],
        "recurring": None, "tax_behavior": params.get("tax_behavior", "unspecified"), "tiers_mode": None,
        "transform_quantity": None, "type": "one_time", "unit_amount": None, "unit_amount_decimal": None,
    })
    if "unit_amount" in params:
        amount = as_int(params["unit_amount"], "unit_amount", minimum=0)
        price["unit_amount"], price["unit_amount_decimal"] = amount, str(amount)
    elif "unit_amount_decimal" in params:
        price["unit_amount_decimal"] = str(params["unit_amount_decimal"])
        price["unit_amount"] = int(float(params["unit_amount_decimal"]))
    if params.get("recurring"):
        recurring = as_dict(params["recurring"], "recurring")
        require(recurring, "interval")
        if recurring["interval"] not in INTERVALS:
            raise invalid("Invalid recurring[interval]: must be one of day, week, month, or year",
                          param="recurring[interval]")
        usage_type = recurring.get("usage_type", "licensed")
        meter = recurring.get("meter")
        if usage_type == "metered" and not meter:
            raise invalid("Metered prices must be backed by a meter: set recurring[meter].", param="recurring[meter]")
        if meter:
            req.store.require("billing.meter", meter, param="recurring[meter]")
        price["recurring"] = {
            "interval": recurring["interval"],
            "interval_count": as_int(recurring.get("interval_count", 1), "recurring[interval_count]", minimum=1),
            "meter": meter, "usage_type": usage_type,
            "trial_period_days": (as_int(recurring["trial_period_days"], "recurring[trial_period_days]")
                                  if recurring.get("trial_period_days") else None),
        }
        price["type"] = "recurring"
    if price["unit_amount"] is None and not params.get("custom_unit_amount"):
        raise invalid("Missing required param: unit_amount.", param="unit_amount", code="parameter_missing")
    if "metadata" in params:
        price["metadata"] = merge_metadata({}, params["metadata"])
    if "active" in params:
        price["active"] = as_bool(params["active"], "active")
    req.store.add(price)
    if params.get("lookup_key"):
        _set_lookup_key(req, price, params["lookup_key"], as_bool(params.get("transfer_lookup_key", False),
                                                                  "transfer_lookup_key"))
    req.store.emit("price.created", req.store.render(price))
    return price


def _set_lookup_key(req: Request, price: dict, key: str, transfer: bool) -> None:
    holder = next((p for p in req.store.all("price") if p["lookup_key"] == key and p is not price), None)
    if holder is not None:
        if not transfer:
            raise invalid(f"A price (`{holder['id']}`) already uses that lookup key.", param="lookup_key")
        before = req.store.render(holder)
        holder["lookup_key"] = None
        req.store.emit_update("price.updated", before, req.store.render(holder))
    price["lookup_key"] = key


@route("POST", "/v1/prices", params=PRICE_PARAMS)
def create_price(req: Request):
    key = req.params.get("lookup_key")
    transfer = as_bool(req.params.get("transfer_lookup_key", False), "transfer_lookup_key")
    holder = next((p for p in req.store.all("price") if p["lookup_key"] == key), None) if key else None
    if holder is not None and not transfer:   # checked before new_price creates anything
        raise invalid(f"A price (`{holder['id']}`) already uses that lookup key.", param="lookup_key")
    return req.store.render(new_price(req, req.params))


@route("GET", "/v1/prices/{price_id}")
def retrieve_price(req: Request, price_id: str):
    return req.store.render(req.store.require("price", price_id))


@route("POST", "/v1/prices/{price_id}", params={"active", "metadata", "nickname", "lookup_key", "transfer_lookup_key",
                                                "tax_behavior", "currency_options"})
def update_price(req: Request, price_id: str):
    price = req.store.require("price", price_id)
    before = req.store.render(price)
    if "active" in req.params:
        price["active"] = as_bool(req.params["active"], "active")
    if "metadata" in req.params:
        price["metadata"] = merge_metadata(price["metadata"], req.params["metadata"])
    if "nickname" in req.params:
        price["nickname"] = nullable(req.params["nickname"])
    if "tax_behavior" in req.params:
        price["tax_behavior"] = req.params["tax_behavior"]
    if "lookup_key" in req.params:
        key = nullable(req.params["lookup_key"])
        if key:
            _set_lookup_key(req, price, key, as_bool(req.params.get("transfer_lookup_key", False),
                                                      "transfer_lookup_key"))
        else:
            price["lookup_key"] = None
    after = req.store.render(price)
    req.store.emit_update("price.updated", before, after)
    return after


@route("GET", "/v1/prices", params={"active", "currency", "product", "type", "lookup_keys", "recurring[interval]",
                                    "recurring[meter]", "recurring[usage_type]", *CREATED, *PAGE_PARAMS})
def list_prices(req: Request):
    objs = req.store.all("price")
    params = req.params
    if "active" in params:
        active = as_bool(params["active"], "active")
        objs = [p for p in objs if p["active"] == active]
    if "product" in params:
        objs = [p for p in objs if p["product"] == params["product"]]
    if "currency" in params:
        objs = [p for p in objs if p["currency"] == params["currency"]]
    if "type" in params:
        objs = [p for p in objs if p["type"] == params["type"]]
    if "lookup_keys" in params:
        keys = as_str_list(params["lookup_keys"], "lookup_keys")
        if len(keys) > 10:
            raise invalid("You may only specify up to 10 lookup keys.", param="lookup_keys")
        objs = [p for p in objs if p["lookup_key"] in keys]
    if "recurring" in params:
        recurring = as_dict(params["recurring"], "recurring")
        if "interval" in recurring:
            objs = [p for p in objs if p["recurring"] and p["recurring"]["interval"] == recurring["interval"]]
        if "usage_type" in recurring:
            objs = [p for p in objs if p["recurring"] and p["recurring"]["usage_type"] == recurring["usage_type"]]
    objs = created_filter(objs, params)
    return page(req.store, objs, params, "/v1/prices", "price")


@route("GET", "/v1/prices/search", params=SEARCH_PARAMS)
def search_prices(req: Request):
    return search(req.store, req.store.all("price"), req.params, "prices")


# -- product features -------------------------------------------------------------------------

def _customers_of_product(store, product_id: str) -> set[str]:
    return {sub["customer"] for sub in store.all("subscription")
            if sub["status"] not in billing.ENDED and product_id in periods.product_ids(store, sub)}


@route("POST", "/v1/products/{product_id}/features", params={"entitlement_feature"})
def attach_feature(req: Request, product_id: str):
    require(req.params, "entitlement_feature")
    product = req.store.require("product", product_id)
    feature = req.store.require("entitlements.feature", req.params["entitlement_feature"], param="entitlement_feature")
    if not feature["active"]:
        raise invalid("Archived features cannot be attached to products.", param="entitlement_feature")
    if any(pf["_product"] == product_id and pf["entitlement_feature"]["id"] == feature["id"] and not pf.get("_deleted")
           for pf in req.store.all("product_feature")):
        raise invalid(f"Feature {feature['id']} is already attached to product {product_id}.",
                      param="entitlement_feature")
    pf = template("product_feature")
    pf.update({"id": new_id("prodft", 24), "entitlement_feature": req.store.render(feature), "livemode": False,
               "_product": product["id"], "_feature": feature["id"]})
    req.store.add(pf)
    for customer in _customers_of_product(req.store, product_id):
        req.store.touch(customer)
    return render_product_feature(req.store, pf)


def render_product_feature(store, pf: dict) -> dict:
    body = public(pf)
    feature = store.get("entitlements.feature", pf["_feature"])
    body["entitlement_feature"] = store.render(feature)
    return body


@route("GET", "/v1/products/{product_id}/features", params=PAGE_PARAMS)
def list_features(req: Request, product_id: str):
    req.store.require("product", product_id)
    objs = [pf for pf in req.store.all("product_feature") if pf["_product"] == product_id and not pf.get("_deleted")]
    return page(req.store, objs, req.params, f"/v1/products/{product_id}/features", "product_feature")


@route("GET", "/v1/products/{product_id}/features/{pf_id}")
def retrieve_feature(req: Request, product_id: str, pf_id: str):
    pf = req.store.require("product_feature", pf_id)
    if pf["_product"] != product_id:
        raise invalid(f"No such product feature: '{pf_id}'", code="resource_missing", status=404)
    return render_product_feature(req.store, pf)


@route("DELETE", "/v1/products/{product_id}/features/{pf_id}")
def detach_feature(req: Request, product_id: str, pf_id: str):
    pf = req.store.require("product_feature", pf_id)
    if pf["_product"] != product_id:
        raise invalid(f"No such product feature: '{pf_id}'", code="resource_missing", status=404)
    for customer in _customers_of_product(req.store, product_id):
        req.store.touch(customer)
    return req.store.delete(pf)


def product_feature_ids(store, product_id: str) -> list[str]:
    """Active features attached to a product, in attachment order."""
    out = []
    for pf in store.all("product_feature"):
        if pf["_product"] == product_id and not pf.get("_deleted"):
            feature = store.get("entitlements.feature", pf["_feature"])
            if feature and feature["active"]:
                out.append(feature["id"])
    return out

