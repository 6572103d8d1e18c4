"""Payment methods, from Stripe's test tokens.

`pm_card_visa` (and friends) always pay. As in Stripe test mode, `pm_card_chargeDeclined`
(card 4000000000000002) is declined as soon as it is attached to a customer (402 card_declined),
and `pm_card_chargeCustomerFail` (4000000000000341) attaches fine but every charge fails: that is
the card for renewals that fail and dunning. `pm_card_authenticationRequired` (4000002760003184)
attaches fine and needs 3-D Secure for every payment: a first payment is left `requires_action` to
be confirmed (`POST /v1/payment_intents/{id}/confirm`, the customer passing the challenge), an
off-session renewal fails. A token resolves to one new `pm_…` per request, so
`payment_method=pm_card_visa&invoice_settings[default_payment_method]=pm_card_visa` attaches
one card and makes it the default, as in Stripe's docs.
"""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from ..errors import ApiError, card_declined, invalid
from ..forms import as_dict, as_int, merge_metadata, nullable, require
from ..ids import new_id, random_part
from ..lists import PAGE_PARAMS, page
from ..router import Request, route
from ..shapes import template

# token → (brand, last4, behaviour): "ok", "decline_on_attach", "fail_on_charge" or "authenticate"
TEST_TOKENS = {
    "pm_card_visa": ("visa", "4242", "ok"),
    "pm_card_visa_debit": ("visa", "5556", "ok"),
    "pm_card_mastercard": ("mastercard", "4444", "ok"),
    "pm_card_amex": ("amex", "8431", "ok"),
    "pm_card_chargeDeclined": ("visa", "0002", "decline_on_attach"),
    "pm_card_visa_chargeDeclined": ("visa", "0002", "decline_on_attach"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "decline_on_attach"),
    "pm_card_chargeCustomerFail": ("visa", "0341", "fail_on_charge"),
    "pm_card_authenticationRequired": ("visa", "3184", "authenticate"),
}
UPDATE_PARAMS = {"metadata", "allow_redisplay", "card[exp_month]", "card[exp_year]",
                 *(f"billing_details[{k}]" for k in ("email", "name", "phone", "tax_id")),
                 *(f"billing_details[address][{k}]" for k in ("city", "country", "line1", "line2", "postal_code",
                                                              "state"))}


def _from_token(req: Request, token: str) -> dict:
    brand, last4, behaviour = TEST_TOKENS[token]
    pm = template("payment_method")
    now = req.store.now()
    pm.update({
        "id": new_id("pm", 24), "created": now, "customer": None, "metadata": {}, "livemode": False,
        "allow_redisplay": "unspecified", "customer_account": None, "type": "card",
        "billing_details": {"address": {"city": None, "country": None, "line1": None, "line2": None,
                                        "postal_code": None, "state": None},
                            "email": None, "name": None, "phone": None, "tax_id": None},
        "_behavior": behaviour,
    })
    card = pm["card"]
    card.update({"brand": brand, "display_brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2034,
                 "fingerprint": hashlib.sha1(token.encode()).hexdigest()[:16], "generated_from": None,
                 "wallet": None, "networks": {"available": [brand], "preferred": None}})
    card["checks"] = {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"}
    return req.store.add(pm)


def resolve(req: Request, value: str, param: str) -> dict:
    """A payment method by id or test token (one new object per token per request)."""
    if not isinstance(value, str) or not value:
        raise invalid(f"Invalid string: {value}", param=param)
    tokens = req.extra.setdefault("pm_tokens", {})
    if value in TEST_TOKENS:
        if value not in tokens:
            tokens[value] = _from_token(req, value)
        return tokens[value]
    pm = req.store.get("payment_method", value)
    if pm is None:
        raise ApiError(400, "invalid_request_error", f"No such PaymentMethod: '{value}'", code="resource_missing",
                       param=param)
    return pm


def attach(req: Request, pm: dict, customer: dict) -> dict:
    if pm["customer"] == customer["id"]:
        return pm
    if pm["customer"] is not None:
        raise invalid("The payment method you provided has already been attached to a customer.",
                      param="payment_method")
    if pm["_behavior"] == "decline_on_attach":
        raise card_declined()
    pm["customer"] = customer["id"]
    req.store.emit("payment_method.attached", req.store.render(pm))
    return pm


def attached_to(req: Request, value: str, customer: dict, param: str) -> dict:
    """A payment method that must belong to `customer` (test tokens are attached on the fly)."""
    pm = resolve(req, value, param)
    if pm["customer"] is None and value in TEST_TOKENS:
        return attach(req, pm, customer)
    if pm["customer"] != customer["id"]:
        raise invalid(f"The customer does not have a payment method with the ID {pm['id']}. The payment method "
                      "must be attached to the customer.", param=param, code="resource_missing")
    return pm


def charge_id() -> str:
    return "ch_" + random_part(24)


# -- endpoints ----------------------------------------------------------------------------------

@route("GET", "/v1/payment_methods/{pm_id}")
def retrieve(req: Request, pm_id: str):
    return req.store.render(req.store.require("payment_method", pm_id))


@route("POST", "/v1/payment_methods/{pm_id}/attach", params={"customer"})
def attach_endpoint(req: Request, pm_id: str):
    require(req.params, "customer")
    customer = req.store.require("customer", req.params["customer"], param="customer")
    return req.store.render(attach(req, resolve(req, pm_id, "payment_method"), customer))


@route("POST", "/v1/payment_methods/{pm_id}/detach")
def detach_endpoint(req: Request, pm_id: str):
    pm = req.store.require("payment_method", pm_id)
    if pm["customer"] is None:
        raise invalid("The payment method you provided is not attached to a customer so detachment is impossible.")
    customer = req.store.get("customer", pm["customer"])
    before = req.store.render(customer) if customer else None
    pm["customer"] = None
    req.store.emit("payment_method.detached", req.store.render(pm))
    if customer and customer["invoice_settings"]["default_payment_method"] == pm["id"]:
        customer["invoice_settings"]["default_payment_method"] = None   # Stripe unsets the default too
        req.store.emit_update("customer.updated", before, req.store.render(customer))
    return req.store.render(pm)


@route("POST", "/v1/payment_methods/{pm_id}", params=UPDATE_PARAMS)
def update(req: Request, pm_id: str):
    """Stripe's card updates: expiry, billing details, metadata (only for an attached card)."""
    pm = req.store.require("payment_method", pm_id)
    if pm["customer"] is None:
        raise invalid("You must save this PaymentMethod to a customer before you can update it.")
    before = req.store.render(pm)
    params = req.params
    card = as_dict(params.get("card"), "card")
    if "exp_month" in card:
        pm["card"]["exp_month"] = as_int(card["exp_month"], "card[exp_month]", minimum=1, maximum=12)
    if "exp_year" in card:
        pm["card"]["exp_year"] = as_int(card["exp_year"], "card[exp_year]", minimum=2000, maximum=2100)
    details = as_dict(params.get("billing_details"), "billing_details")
    for key in ("email", "name", "phone", "tax_id"):
        if key in details:
            pm["billing_details"][key] = nullable(details[key])
    if "address" in details:
        address = as_dict(details["address"], "billing_details[address]")
        pm["billing_details"]["address"].update({k: nullable(v) for k, v in address.items()})
    if "metadata" in params:
        pm["metadata"] = merge_metadata(pm["metadata"], params["metadata"])
    if "allow_redisplay" in params:
        if params["allow_redisplay"] not in ("always", "limited", "unspecified"):
            raise invalid("Invalid allow_redisplay: must be one of always, limited, or unspecified",
                          param="allow_redisplay")
        pm["allow_redisplay"] = params["allow_redisplay"]
    after = req.store.render(pm)
    req.store.emit_update("payment_method.updated", before, after)
    return after


@route("POST", "/_emulator/payment_methods/{pm_id}/expire")
def expire(req: Request, pm_id: str):
    """Test control: the card now expires at the end of the current month (its customer's clock
    time), as a card edited in the dashboard would; `payment_method.updated` follows."""
    pm = req.store.require("payment_method", pm_id)
    customer = req.store.get("customer", pm["customer"]) if pm["customer"] else None
    today = datetime.fromtimestamp(req.store.customer_now(customer), UTC)
    before = req.store.render(pm)
    pm["card"]["exp_month"], pm["card"]["exp_year"] = today.month, today.year
    after = req.store.render(pm)
    req.store.emit_update("payment_method.updated", before, after)
    return after


@route("GET", "/v1/payment_methods", params={"customer", "type", *PAGE_PARAMS})
def list_for_customer(req: Request):
    customer = req.params.get("customer")
    objs = [p for p in req.store.all("payment_method") if p["customer"] and (not customer or p["customer"] == customer)]
    return page(req.store, objs, req.params, "/v1/payment_methods", "payment_method")


@route("GET", "/v1/customers/{customer_id}/payment_methods", params={"type", "allow_redisplay", *PAGE_PARAMS})
def list_customer_payment_methods(req: Request, customer_id: str):
    req.store.require("customer", customer_id)
    objs = [p for p in req.store.all("payment_method") if p["customer"] == customer_id]
    return page(req.store, objs, req.params, f"/v1/customers/{customer_id}/payment_methods", "payment_method")
