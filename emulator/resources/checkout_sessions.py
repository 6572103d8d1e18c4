"""Checkout Sessions in `subscription` mode, and the test control that plays the customer.

`POST /v1/checkout/sessions` makes an `open` session with a `url` and `expires_at` (24 hours by
default; 30 minutes at the least, as in Stripe). Nothing exists in Stripe's books until the
customer pays: `POST /_emulator/checkout_sessions/{id}/complete` `{"payment_method": token}` is the
customer on the hosted page. With a card that pays (`pm_card_visa`) the session's customer is
created when it had none (`customer_creation: always`), the card attached, the subscription
created with it as its `default_payment_method` and its first invoice paid, then the session is
`complete` and `checkout.session.completed` is sent, after the subscription's and invoice's own
events, as Stripe orders them. A declined card (`pm_card_chargeDeclined`) is answered 402
`card_declined` and changes nothing (the page shows the error; the session stays `open`). A card
that asks for 3-D Secure (`pm_card_authenticationRequired`) leaves the subscription `incomplete`
with its first payment `requires_action`; the session completes when that PaymentIntent is
confirmed (`POST /v1/payment_intents/{id}/confirm`). An expired session cannot be completed.
"""
from __future__ import annotations

from ..errors import card_declined, invalid
from ..forms import as_dict, as_hash_list, as_int, merge_metadata, nullable, require
from ..ids import random_part
from ..lists import CREATED, PAGE_PARAMS, created_filter, page
from ..router import Request, route
from ..shapes import template
from . import customers, payment_methods, subscriptions
from .subscription_params import check_compatible, price_for_item, quantity_of

DEFAULT_LIFETIME = 24 * 3600
MIN_LIFETIME, MAX_LIFETIME = 30 * 60, 24 * 3600
SUBSCRIPTION_DATA = {"trial_period_days", "trial_end", "description", "metadata", "default_tax_rates",
                     "billing_cycle_anchor", "proration_behavior", "application_fee_percent", "on_behalf_of",
                     "transfer_data", "invoice_settings", "billing_mode",
                     "trial_settings[end_behavior][missing_payment_method]"}
CREATE_PARAMS = {
    "mode", "success_url", "cancel_url", "return_url", "customer", "customer_email", "client_reference_id",
    "metadata", "expires_at", "locale", "ui_mode", "payment_method_types", "payment_method_collection",
    "allow_promotion_codes", "billing_address_collection", "automatic_tax[enabled]", "tax_id_collection[enabled]",
    "customer_update[address]", "customer_update[name]", "customer_update[shipping]", "discounts",
    "consent_collection", "custom_text", "custom_fields", "phone_number_collection[enabled]",
    "saved_payment_method_options", "submit_type", "currency",
    *(f"line_items[{k}]" for k in ("price", "quantity", "adjustable_quantity", "tax_rates", "dynamic_tax_rates")),
    *(f"subscription_data[{k}]" for k in SUBSCRIPTION_DATA),
}


def _url(session_id: str) -> str:
    return f"https://checkout.stripe.com/c/pay/{session_id}"


def _line_items(req: Request) -> list[tuple[dict, int | None]]:
    specs = as_hash_list(req.params.get("line_items"), "line_items")
    if not specs:
        raise invalid("Missing required param: line_items.", param="line_items", code="parameter_missing")
    items = []
    for n, spec in enumerate(specs):
        price = price_for_item(req, spec, f"line_items[{n}]")
        items.append((price, quantity_of(spec, price, f"line_items[{n}]")))
    check_compatible([price for price, _ in items])
    return items


@route("POST", "/v1/checkout/sessions", params=CREATE_PARAMS)
def create(req: Request):
    params = req.params
    require(params, "mode")
    if params["mode"] not in ("payment", "setup", "subscription"):
        raise invalid("Invalid mode: must be one of payment, setup, or subscription", param="mode")
    if params["mode"] != "subscription":
        raise invalid(f"Checkout in {params['mode']} mode is not supported by the emulator; use subscription mode.",
                      param="mode")
    if params.get("ui_mode", "hosted") == "hosted":
        require(params, "success_url")
    if params.get("customer") and params.get("customer_email"):
        raise invalid("You may only specify one of these parameters: customer, customer_email.",
                      param="customer_email")
    customer = req.store.require("customer", params["customer"], param="customer") if params.get("customer") else None
    items = _line_items(req)
    data = as_dict(params.get("subscription_data"), "subscription_data")
    trial_days = as_int(data["trial_period_days"], "subscription_data[trial_period_days]", minimum=1, maximum=730) \
        if data.get("trial_period_days") not in (None, "") else None
    now = req.store.customer_now(customer)
    expires_at = as_int(params["expires_at"], "expires_at") if "expires_at" in params else now + DEFAULT_LIFETIME
    if not now + MIN_LIFETIME <= expires_at <= now + MAX_LIFETIME:
        raise invalid("The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session "
                      "creation.", param="expires_at")
    amount = 0 if trial_days else sum((p["unit_amount"] or 0) * (q or 0) for p, q in items)
    session = template("checkout.session")
    session_id = f"cs_test_{random_part(58)}"
    session.update({
        "id": session_id, "after_expiration": None, "allow_promotion_codes": None, "amount_subtotal": amount,
        "amount_total": amount, "automatic_tax": {"enabled": False, "liability": None, "status": None,
                                                  "provider": None},
        "billing_address_collection": params.get("billing_address_collection"),
        "cancel_url": params.get("cancel_url"), "client_reference_id": nullable(params.get("client_reference_id")),
        "client_secret": None, "consent": None, "consent_collection": None, "created": now,
        "currency": items[0][0]["currency"], "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": customer["id"] if customer else None, "customer_creation": None if customer else "always",
        "customer_details": None, "customer_email": params.get("customer_email"), "expires_at": expires_at,
        "invoice": None, "invoice_creation": None, "livemode": False, "locale": params.get("locale"),
        "metadata": merge_metadata({}, params.get("metadata", {})), "mode": "subscription", "payment_intent": None,
        "payment_link": None, "payment_method_collection": params.get("payment_method_collection", "always"),
        "payment_method_configuration_details": None, "payment_method_options": {},
        "payment_method_types": list(params.get("payment_method_types") or ["card"]),
        "payment_status": "unpaid", "phone_number_collection": {"enabled": False}, "recovered_from": None,
        "saved_payment_method_options": None, "setup_intent": None, "shipping_address_collection": None,
        "shipping_cost": None, "shipping_options": [], "status": "open", "submit_type": None, "subscription": None,
        "success_url": params.get("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": params.get("ui_mode", "hosted"), "url": _url(session_id), "adaptive_pricing": None,
        "discounts": [], "collected_information": None,
        "_items": [(price["id"], quantity) for price, quantity in items], "_trial_days": trial_days,
        "_subscription_metadata": merge_metadata({}, data.get("metadata", {})),
    })
    req.store.add(session)
    return req.store.render(session)


def _require_session(req: Request, session_id: str) -> dict:
    session = req.store.require("checkout.session", session_id)
    _expire_if_due(req, session)
    return session


def _expire_if_due(req: Request, session: dict) -> None:
    customer = req.store.get("customer", session["customer"]) if session["customer"] else None
    if session["status"] == "open" and req.store.customer_now(customer) >= session["expires_at"]:
        _expire(req, session)


def _expire(req: Request, session: dict) -> None:
    session.update({"status": "expired", "url": None})
    req.store.emit("checkout.session.expired", req.store.render(session))


@route("GET", "/v1/checkout/sessions/{session_id}")
def retrieve(req: Request, session_id: str):
    return req.store.render(_require_session(req, session_id))


@route("GET", "/v1/checkout/sessions", params={"customer", "subscription", "status", "payment_intent",
                                               "payment_link", *CREATED, *PAGE_PARAMS})
def list_(req: Request):
    objs = req.store.all("checkout.session")
    for session in objs:
        _expire_if_due(req, session)
    for key in ("customer", "subscription", "status"):
        if key in req.params:
            objs = [s for s in objs if s[key] == req.params[key]]
    return page(req.store, created_filter(objs, req.params), req.params, "/v1/checkout/sessions", "checkout.session")


@route("POST", "/v1/checkout/sessions/{session_id}/expire")
def expire(req: Request, session_id: str):
    session = _require_session(req, session_id)
    if session["status"] != "open":
        raise invalid(f"Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has "
                      f"a status of \"{session['status']}\".")
    _expire(req, session)
    return req.store.render(session)


# -- the customer on the hosted page (test control) -------------------------------------------

@route("POST", "/_emulator/checkout_sessions/{session_id}/complete", params={"payment_method"})
def complete(req: Request, session_id: str):
    """Pay on the hosted page with a test card (see the module docstring for each card)."""
    session = _require_session(req, session_id)
    if session["status"] != "open" or session.get("_subscription_pending"):
        raise invalid(f"This Checkout Session is {session['status']} and can no longer be completed.")
    require(req.params, "payment_method")
    pm = payment_methods.resolve(req, req.params["payment_method"], "payment_method")
    if pm["_behavior"] == "decline_on_attach":
        raise card_declined()   # the page shows the error: nothing is created, the session stays open
    customer = req.store.get("customer", session["customer"]) if session["customer"] else None
    if customer is None:
        customer = customers.create_from(req, {"email": session["customer_email"]} if session["customer_email"] else {})
        session["customer"] = customer["id"]
    params: dict = {"customer": customer["id"], "default_payment_method": pm["id"],
                    "items": [{"price": price_id, **({"quantity": str(q)} if q is not None else {})}
                              for price_id, q in session["_items"]],
                    "metadata": session["_subscription_metadata"]}
    if session["_trial_days"]:
        params["trial_period_days"] = str(session["_trial_days"])
    payment_methods.attach(req, pm, customer)
    sub = subscriptions.create_subscription(req, params)
    session.update({"subscription": sub["id"], "invoice": sub["latest_invoice"]})
    invoice = req.store.get("invoice", sub["latest_invoice"])
    if sub["status"] == "incomplete" and invoice and invoice.get("_payment_intent"):
        session["_subscription_pending"] = invoice["_payment_intent"]   # completes once 3-D Secure passes
        return req.store.render(session)
    _complete(req, session, paid=invoice is not None and invoice["amount_due"] > 0)
    return req.store.render(session)


def payment_confirmed(req: Request, intent: dict) -> None:
    """A PaymentIntent was confirmed: the session waiting on it completes."""
    for session in req.store.all("checkout.session"):
        if session.get("_subscription_pending") == intent["id"] and session["status"] == "open":
            session.pop("_subscription_pending")
            _complete(req, session, paid=True)


def _complete(req: Request, session: dict, *, paid: bool) -> None:
    customer = req.store.get("customer", session["customer"])
    session.update({
        "status": "complete", "payment_status": "paid" if paid else "no_payment_required", "url": None,
        "customer_details": {"address": customer["address"], "email": customer["email"], "name": customer["name"],
                             "phone": customer["phone"], "tax_exempt": customer["tax_exempt"], "tax_ids": [],
                             "business_name": None, "individual_name": None},
    })
    req.store.emit("checkout.session.completed", req.store.render(session))
