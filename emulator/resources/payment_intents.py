"""PaymentIntents, as far as invoices need them: a first payment on a card that asks for 3-D Secure
(`pm_card_authenticationRequired`) leaves the invoice's intent `requires_action`, and a
subscription created with `payment_behavior=default_incomplete` leaves its first invoice's intent
to the customer (`requires_payment_method`, or `requires_confirmation` with a card on file; its
client secret is the invoice's includable `confirmation_secret`). Confirming one
(`POST /v1/payment_intents/{id}/confirm`, what Stripe.js does in the customer's browser) pays the
invoice, which brings its subscription from `incomplete` to `active` (with the card as the
subscription's default when `payment_settings[save_default_payment_method]=on_subscription`) and
completes a Checkout Session waiting on it. Other charges make no PaymentIntent here."""
from __future__ import annotations

from ..billing import lifecycle, payments, render
from ..errors import card_declined, invalid
from ..lists import CREATED, INCLUDABLE, PAGE_PARAMS, created_filter, page
from ..router import Request, route
from ..store import Store
from . import checkout_sessions, payment_methods


@route("GET", "/v1/payment_intents/{pi_id}", params={"client_secret"})
def retrieve(req: Request, pi_id: str):
    return req.store.render(req.store.require("payment_intent", pi_id))


@route("GET", "/v1/payment_intents", params={"customer", *CREATED, *PAGE_PARAMS})
def list_(req: Request):
    objs = req.store.all("payment_intent")
    if "customer" in req.params:
        objs = [i for i in objs if i["customer"] == req.params["customer"]]
    return page(req.store, created_filter(objs, req.params), req.params, "/v1/payment_intents", "payment_intent")


CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")


@route("POST", "/v1/payment_intents/{pi_id}/confirm", params={"client_secret", "payment_method", "return_url",
                                                               "off_session", "mandate_data", "use_stripe_sdk"})
def confirm(req: Request, pi_id: str):
    """What Stripe.js sends from the customer's browser. An intent that `requires_action` and gets
    no new payment method: the customer passed the 3-D Secure challenge, the payment goes through.
    Otherwise the payment method given (or the intent's own) is charged as its test token says:
    it pays; it asks for 3-D Secure (`requires_action`: confirm again once passed); or it is
    declined (402 `card_declined`, the intent back to `requires_payment_method`)."""
    intent = req.store.require("payment_intent", pi_id)
    if intent["status"] not in CONFIRMABLE:
        raise invalid(f"You cannot confirm this PaymentIntent because it has a status of {intent['status']}. Only a "
                      "PaymentIntent with one of the following statuses may be confirmed: "
                      f"{', '.join(CONFIRMABLE)}.", code="payment_intent_unexpected_state")
    if "client_secret" in req.params and req.params["client_secret"] != intent["client_secret"]:
        raise invalid("The client_secret provided does not match the client_secret associated with the "
                      "PaymentIntent.", param="client_secret")
    invoice = req.store.get("invoice", intent["_invoice"])
    customer = req.store.get("customer", intent["customer"])
    now = req.store.customer_now(customer)
    given = req.params.get("payment_method")
    if intent["status"] != "requires_action" or given:
        pm = _payment_method(req, intent, given)
        if pm["_behavior"] in ("decline_on_attach", "fail_on_charge"):
            _declined(req, intent, invoice, pm)
            raise card_declined()
        if pm["customer"] is None and customer is not None:
            payment_methods.attach(req, pm, customer)
        intent["payment_method"] = pm["id"]
        if pm["_behavior"] == "authenticate":
            intent.update({"status": "requires_action", "next_action": {
                "type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}})
            req.store.emit("payment_intent.requires_action", req.store.render(intent))
            return req.store.render(intent)
    intent.update({"status": "succeeded", "amount_received": intent["amount"], "next_action": None,
                   "last_payment_error": None})
    req.store.emit("payment_intent.succeeded", req.store.render(intent))
    if invoice is not None and invoice["status"] == "open":
        sub = req.store.get("subscription", invoice["subscription"]) if invoice["subscription"] else None
        before = render.render_subscription(req.store, sub) if sub else None
        invoice["attempt_count"] = max(invoice["attempt_count"], 1)
        if sub is not None and sub["payment_settings"]["save_default_payment_method"] == "on_subscription":
            sub["default_payment_method"] = intent["payment_method"]
        payments.mark_paid(req.store, invoice, now)
        if sub is not None and before is not None:
            lifecycle.settle_after_payment(req.store, sub, before)
        checkout_sessions.payment_confirmed(req, intent)
    return req.store.render(intent)


def _payment_method(req: Request, intent: dict, given: str | None) -> dict:
    if given:
        return payment_methods.resolve(req, given, "payment_method")
    pm = req.store.get("payment_method", intent["payment_method"]) if intent["payment_method"] else None
    if pm is None:
        raise invalid("You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the "
                      "PaymentIntent, provide a payment_method.", code="payment_intent_unexpected_state")
    return pm


def _declined(req: Request, intent: dict, invoice: dict | None, pm: dict) -> None:
    """A declined confirmation: the intent waits for another payment method; the invoice counts
    the attempt (`invoice.payment_failed`), as Stripe's does."""
    intent.update({"status": "requires_payment_method", "payment_method": None, "next_action": None,
                   "last_payment_error": {"type": "card_error", "code": "card_declined",
                                          "decline_code": "generic_decline", "message": "Your card was declined.",
                                          "payment_method": req.store.render(pm)}})
    req.store.emit("payment_intent.payment_failed", req.store.render(intent))
    if invoice is not None and invoice["status"] == "open":
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        req.store.emit("invoice.payment_failed", req.store.render(invoice))


def _confirmation_secret(store: Store, invoice: dict) -> dict | None:
    """An invoice's `confirmation_secret` (includable: only with `expand[]`): the client secret of
    its PaymentIntent, which Stripe.js confirms in the browser."""
    stored = store.get("invoice", invoice["id"])
    intent = store.get("payment_intent", stored.get("_payment_intent")) if stored else None
    return {"client_secret": intent["client_secret"], "type": "payment_intent"} if intent else None


INCLUDABLE[("invoice", "confirmation_secret")] = _confirmation_secret
