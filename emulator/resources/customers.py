"""Customers: create, retrieve, update, delete, list, search.

Deleting a customer cancels its subscriptions first (as Stripe does); afterwards it retrieves
as `{"id", "object": "customer", "deleted": true}` and any write to it is a 404.
"""
from __future__ import annotations

from .. import billing
from ..billing import lifecycle
from ..errors import invalid
from ..forms import as_dict, merge_metadata, nullable
from ..ids import new_id, random_part
from ..lists import CREATED, PAGE_PARAMS, created_filter, page
from ..router import Request, route
from ..search import SEARCH_PARAMS, search
from ..shapes import deleted, template
from . import payment_methods

ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")
WRITABLE = {"name", "email", "description", "phone", "metadata", *(f"address[{k}]" for k in ADDRESS_KEYS),
            *(f"shipping[address][{k}]" for k in ADDRESS_KEYS), "shipping[name]", "shipping[phone]",
            "preferred_locales", *(f"invoice_settings[{k}]" for k in ("custom_fields", "default_payment_method",
                                                                       "footer", "rendering_options")),
            "payment_method", "tax_exempt", "balance", "invoice_prefix", "next_invoice_sequence", "source", "coupon",
            "promotion_code", "tax", "default_source", "cash_balance", "validate"}


def _address(value, param: str):
    if value in (None, ""):
        return None
    value = as_dict(value, param)
    return {k: nullable(value.get(k)) for k in ADDRESS_KEYS}


def _apply(req: Request, customer: dict, params: dict) -> None:
    for key in ("name", "email", "description", "phone"):
        if key in params:
            customer[key] = nullable(params[key])
    if "metadata" in params:
        customer["metadata"] = merge_metadata(customer["metadata"], params["metadata"])
    if "address" in params:
        customer["address"] = _address(params["address"], "address")
    if "shipping" in params:
        shipping = as_dict(params["shipping"], "shipping")
        customer["shipping"] = ({"address": _address(shipping.get("address"), "shipping[address]"),
                                 "name": shipping.get("name"), "phone": shipping.get("phone")} if shipping else None)
    if "preferred_locales" in params:
        value = params["preferred_locales"]
        customer["preferred_locales"] = [] if value == "" else list(value)
    if "tax_exempt" in params:
        if params["tax_exempt"] not in ("none", "exempt", "reverse"):
            raise invalid("Invalid tax_exempt: must be one of none, exempt, or reverse", param="tax_exempt")
        customer["tax_exempt"] = params["tax_exempt"]
    if params.get("payment_method"):
        payment_methods.attach(req, payment_methods.resolve(req, params["payment_method"], "payment_method"), customer)
    if "invoice_settings" in params:
        settings = as_dict(params["invoice_settings"], "invoice_settings")
        if "default_payment_method" in settings:
            value = nullable(settings["default_payment_method"])
            customer["invoice_settings"]["default_payment_method"] = (
                payment_methods.attached_to(req, value, customer, "invoice_settings[default_payment_method]")["id"]
                if value else None)


def _new(req: Request, params: dict) -> dict:
    clock_id = params.get("test_clock")
    if clock_id:
        clock = req.store.require("test_helpers.test_clock", clock_id, param="test_clock")
        if clock["status"] == "advancing":
            raise invalid("The test clock is advancing; wait until it is ready.", param="test_clock")
    customer = template("customer")
    customer.update({
        "id": new_id("cus"), "created": req.store.now(clock_id), "address": None, "balance": 0, "currency": None,
        "default_source": None, "delinquent": False, "description": None, "discount": None, "email": None,
        "invoice_prefix": random_part(8).upper(), "livemode": False, "metadata": {}, "name": None,
        "next_invoice_sequence": 1, "phone": None, "preferred_locales": [], "shipping": None,
        "tax_exempt": "none", "test_clock": clock_id or None,
    })
    customer["invoice_settings"] = {"custom_fields": None, "default_payment_method": None, "footer": None,
                                    "rendering_options": None}
    return customer


@route("POST", "/v1/customers", params=WRITABLE | {"test_clock"})
def create(req: Request):
    return req.store.render(create_from(req, req.params))


def create_from(req: Request, params: dict) -> dict:
    """A new customer from `POST /v1/customers` parameters (also Checkout's `customer_creation`)."""
    customer = _new(req, params)
    req.store.add(customer)
    try:
        _apply(req, customer, params)
    except Exception:
        req.store.objects["customer"].pop(customer["id"], None)  # a failed create leaves nothing
        raise
    req.store.emit("customer.created", req.store.render(customer))
    return customer


@route("GET", "/v1/customers/{customer_id}")
def retrieve(req: Request, customer_id: str):
    customer = req.store.get("customer", customer_id)
    if customer is not None and customer.get("_deleted"):
        return deleted("customer", customer_id)
    return req.store.render(req.store.require("customer", customer_id))


@route("POST", "/v1/customers/{customer_id}", params=WRITABLE)
def update(req: Request, customer_id: str):
    customer = req.store.require("customer", customer_id)
    before = req.store.render(customer)
    _apply(req, customer, req.params)
    after = req.store.render(customer)
    req.store.emit_update("customer.updated", before, after)
    return after


@route("DELETE", "/v1/customers/{customer_id}")
def delete(req: Request, customer_id: str):
    return delete_customer(req.store, req.store.require("customer", customer_id))


def delete_customer(store, customer: dict) -> dict:
    now = store.customer_now(customer)
    for sub in store.all("subscription"):
        if sub["customer"] == customer["id"] and sub["status"] not in billing.ENDED:
            lifecycle.cancel_now(store, sub, now, reason="cancellation_requested")
    return store.delete(customer, "customer.deleted")


@route("GET", "/v1/customers", params={"email", "test_clock", *CREATED, *PAGE_PARAMS})
def list_(req: Request):
    objs = req.store.live("customer")
    if "email" in req.params:
        objs = [c for c in objs if c["email"] == req.params["email"]]
    if "test_clock" in req.params:
        objs = [c for c in objs if c["test_clock"] == req.params["test_clock"]]
    objs = created_filter(objs, req.params)
    return page(req.store, objs, req.params, "/v1/customers", "customer")


@route("GET", "/v1/customers/search", params=SEARCH_PARAMS)
def search_customers(req: Request):
    return search(req.store, req.store.live("customer"), req.params, "customers")
