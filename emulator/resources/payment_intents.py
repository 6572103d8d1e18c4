"""PaymentIntents, as far as invoices need them: a first payment on a card that asks for 3-D Secure
(`pm_card_authenticationRequired`) leaves the invoice's intent `requires_action`; confirming it
(`POST /v1/payment_intents/{id}/confirm`, what Stripe.js does once the customer passed the
challenge) pays the invoice, which brings its subscription from `incomplete` to `active` and
completes a Checkout Session waiting on it. Other charges make no PaymentIntent here."""
from __future__ import annotations

from ..billing import lifecycle, payments, render
from ..errors import invalid
from ..lists import CREATED, PAGE_PARAMS, created_filter, page
from ..router import Request, route
from . import checkout_sessions


@route("GET", "/v1/payment_intents/{pi_id}", params={"client_secret"})
def retrieve(req: Request, pi_id: str):
    return req.store.render(req.store.require("payment_intent", pi_id))


@route("GET", "/v1/payment_intents", params={"customer", *CREATED, *PAGE_PARAMS})
def list_(req: Request):
    objs = req.store.all("payment_intent")
    if "customer" in req.params:
        objs = [i for i in objs if i["customer"] == req.params["customer"]]
    return page(req.store, created_filter(objs, req.params), req.params, "/v1/payment_intents", "payment_intent")


@route("POST", "/v1/payment_intents/{pi_id}/confirm", params={"client_secret", "payment_method", "return_url",
                                                               "off_session", "mandate_data", "use_stripe_sdk"})
def confirm(req: Request, pi_id: str):
    """The customer passed the 3-D Secure challenge: the payment goes through."""
    intent = req.store.require("payment_intent", pi_id)
    if intent["status"] != "requires_action":
        raise invalid(f"This PaymentIntent's status is {intent['status']}; only one that requires action can be "
                      "confirmed in the emulator.", code="payment_intent_unexpected_state")
    if "client_secret" in req.params and req.params["client_secret"] != intent["client_secret"]:
        raise invalid("The client_secret provided does not match the client_secret associated with the "
                      "PaymentIntent.", param="client_secret")
    invoice = req.store.get("invoice", intent["_invoice"])
    customer = req.store.get("customer", intent["customer"])
    now = req.store.customer_now(customer)
    intent.update({"status": "succeeded", "amount_received": intent["amount"], "next_action": None})
    req.store.emit("payment_intent.succeeded", req.store.render(intent))
    if invoice is not None and invoice["status"] == "open":
        sub = req.store.get("subscription", invoice["subscription"]) if invoice["subscription"] else None
        before = render.render_subscription(req.store, sub) if sub else None
        payments.mark_paid(req.store, invoice, now)
        if sub is not None and before is not None:
            lifecycle.settle_after_payment(req.store, sub, before)
        checkout_sessions.payment_confirmed(req, intent)
    return req.store.render(intent)
