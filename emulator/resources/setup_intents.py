"""SetupIntents: saving a card for later (in-app with Stripe.js, SCA-ready).

`POST /v1/setup_intents` makes one (`requires_payment_method`, with a `client_secret` for the
browser); `POST /v1/setup_intents/{id}/confirm` with a `payment_method` is what Stripe.js sends when
the customer submits the card. A card that pays is attached to the intent's customer, the intent
`succeeded` and `setup_intent.succeeded` sent; making it the default payment method is the
integration's job, as in Stripe. `pm_card_chargeDeclined` fails the setup (402 `card_declined`,
`setup_intent.setup_failed`, back to `requires_payment_method`); `pm_card_authenticationRequired`
answers `requires_action` (`setup_intent.requires_action`) and the next confirm, the customer having
passed 3-D Secure, succeeds.
"""
from __future__ import annotations

from ..errors import card_declined, invalid
from ..forms import merge_metadata, nullable, require
from ..ids import new_id, random_part
from ..lists import CREATED, PAGE_PARAMS, created_filter, page
from ..router import Request, route
from ..shapes import template
from . import payment_methods

USAGES = ("off_session", "on_session")
CONFIRM_PARAMS = {"payment_method", "return_url", "mandate_data", "use_stripe_sdk", "client_secret",
                  "payment_method_options"}


@route("POST", "/v1/setup_intents", params={"customer", "payment_method_types", "usage", "metadata", "description",
                                            "payment_method", "confirm", "return_url", "automatic_payment_methods",
                                            "payment_method_options", "on_behalf_of", "attach_to_self",
                                            "flow_directions", "single_use", "mandate_data"})
def create(req: Request):
    params = req.params
    customer = req.store.require("customer", params["customer"], param="customer") if params.get("customer") else None
    usage = params.get("usage", "off_session")
    if usage not in USAGES:
        raise invalid("Invalid usage: must be one of off_session or on_session", param="usage")
    intent = template("setup_intent")
    intent_id = new_id("seti", 24)
    intent.update({
        "id": intent_id, "automatic_payment_methods": None, "cancellation_reason": None,
        "client_secret": f"{intent_id}_secret_{random_part(32)}", "created": req.store.customer_now(customer),
        "customer": customer["id"] if customer else None, "description": nullable(params.get("description")),
        "last_setup_error": None, "latest_attempt": None, "metadata": merge_metadata({}, params.get("metadata", {})),
        "next_action": None, "payment_method": None, "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"mandate_options": None, "network": None,
                                            "request_three_d_secure": "automatic"}},
        "payment_method_types": list(params.get("payment_method_types") or ["card"]),
        "status": "requires_payment_method", "usage": usage,
    })
    req.store.add(intent)
    req.store.emit("setup_intent.created", req.store.render(intent))
    if params.get("payment_method"):
        _set_payment_method(req, intent, params["payment_method"])
    if params.get("confirm") in ("true", True):
        return _confirm(req, intent)
    return req.store.render(intent)


@route("GET", "/v1/setup_intents/{seti_id}", params={"client_secret"})
def retrieve(req: Request, seti_id: str):
    return req.store.render(req.store.require("setup_intent", seti_id))


@route("GET", "/v1/setup_intents", params={"customer", "payment_method", "attach_to_self", *CREATED, *PAGE_PARAMS})
def list_(req: Request):
    objs = req.store.all("setup_intent")
    for key in ("customer", "payment_method"):
        if key in req.params:
            objs = [i for i in objs if i[key] == req.params[key]]
    return page(req.store, created_filter(objs, req.params), req.params, "/v1/setup_intents", "setup_intent")


@route("POST", "/v1/setup_intents/{seti_id}/confirm", params=CONFIRM_PARAMS)
def confirm(req: Request, seti_id: str):
    intent = req.store.require("setup_intent", seti_id)
    if "client_secret" in req.params and req.params["client_secret"] != intent["client_secret"]:
        raise invalid("The client_secret provided does not match the client_secret associated with the SetupIntent.",
                      param="client_secret")
    if req.params.get("payment_method"):
        _set_payment_method(req, intent, req.params["payment_method"])
    return _confirm(req, intent)


@route("POST", "/v1/setup_intents/{seti_id}/cancel", params={"cancellation_reason"})
def cancel(req: Request, seti_id: str):
    intent = req.store.require("setup_intent", seti_id)
    if intent["status"] in ("succeeded", "canceled"):
        raise invalid(f"You cannot cancel this SetupIntent because it has a status of {intent['status']}.",
                      code="setup_intent_unexpected_state")
    intent.update({"status": "canceled", "cancellation_reason": req.params.get("cancellation_reason"),
                   "next_action": None})
    req.store.emit("setup_intent.canceled", req.store.render(intent))
    return req.store.render(intent)


def _set_payment_method(req: Request, intent: dict, value: str) -> None:
    if intent["status"] in ("succeeded", "canceled"):
        raise invalid(f"You cannot update this SetupIntent because it has a status of {intent['status']}.",
                      code="setup_intent_unexpected_state")
    pm = payment_methods.resolve(req, value, "payment_method")
    if intent["payment_method"] != pm["id"]:
        intent.update({"payment_method": pm["id"], "status": "requires_confirmation", "next_action": None})


def _confirm(req: Request, intent: dict) -> dict:
    if intent["status"] in ("succeeded", "canceled", "requires_payment_method"):
        if intent["status"] == "requires_payment_method":
            require(req.params, "payment_method")
        raise invalid(f"You cannot confirm this SetupIntent because it has a status of {intent['status']}.",
                      code="setup_intent_unexpected_state")
    pm = req.store.get("payment_method", intent["payment_method"])
    if pm["_behavior"] == "decline_on_attach":
        intent.update({"status": "requires_payment_method", "payment_method": None, "next_action": None,
                       "last_setup_error": {"code": "card_declined", "decline_code": "generic_decline",
                                            "message": "Your card was declined.", "type": "card_error",
                                            "payment_method": req.store.render(pm)}})
        req.store.emit("setup_intent.setup_failed", req.store.render(intent))
        raise card_declined()
    if pm["_behavior"] == "authenticate" and intent["status"] == "requires_confirmation":
        redirect = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}
        intent.update({"status": "requires_action", "next_action": redirect})
        req.store.emit("setup_intent.requires_action", req.store.render(intent))
        return req.store.render(intent)
    customer = req.store.get("customer", intent["customer"]) if intent["customer"] else None
    if customer is not None:
        payment_methods.attach(req, pm, customer)
    intent.update({"status": "succeeded", "next_action": None, "last_setup_error": None})
    req.store.emit("setup_intent.succeeded", req.store.render(intent))
    return req.store.render(intent)
