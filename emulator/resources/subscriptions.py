"""Subscriptions: create, retrieve, list, search, update, cancel, resume (items: subscription_items.py).

Creation charges the first invoice at once. `payment_behavior` follows Stripe:
`allow_incomplete` (the default) creates the subscription `incomplete` when the first payment
fails; `error_if_incomplete` answers 402 and creates nothing; `default_incomplete` leaves the
first invoice open and the subscription `incomplete` until the customer confirms its PaymentIntent
(`POST /v1/payment_intents/{id}/confirm`; its client secret is the invoice's
`confirmation_secret`, e.g. `expand[]=latest_invoice.confirmation_secret`), and with
`payment_settings[save_default_payment_method]=on_subscription` the card confirmed becomes the
subscription's default. Without a trial, a paid
subscription needs a payment method (the subscription's or the customer's invoice default).

Changes of price or quantity take effect in place (same `si_` ids) and are prorated as Stripe
does (billing/prorations.py; `proration_behavior`, `proration_date`). Cancelling twice is a 404,
as in Stripe. A trial that ends without a payment method pauses or cancels the subscription when
`trial_settings[end_behavior][missing_payment_method]` says so; `POST …/resume` resumes it.
"""
from __future__ import annotations

from .. import billing
from ..billing import invoicing, lifecycle, payments, periods, render
from ..errors import card_declined, invalid, missing
from ..forms import as_dict, as_int, merge_metadata, nullable, require
from ..ids import new_id
from ..lists import CREATED, PAGE_PARAMS, created_filter, page, range_params
from ..router import Request, route
from ..search import SEARCH_PARAMS, search
from ..shapes import template
from . import payment_methods
from .subscription_items import new_item, update_items
from .subscription_params import (
    BEHAVIOURS,
    CANCELLATION_DETAILS,
    CREATE_PARAMS,
    NO_PAYMENT_METHOD,
    UPDATE_PARAMS,
    amount_of,
    apply_cancel_fields,
    check_compatible,
    check_proration_behaviour,
    end_behaviour_of,
    price_for_item,
    quantity_of,
    save_default_of,
    trial_end_of,
)

# -- create -----------------------------------------------------------------------------------

@route("POST", "/v1/subscriptions", params=CREATE_PARAMS)
def create(req: Request):
    return create_subscription(req, req.params)


def create_subscription(req: Request, params: dict) -> dict:
    """A new subscription from `POST /v1/subscriptions` parameters (also what a completed Checkout
    Session creates); the first invoice is charged as `payment_behavior` says."""
    require(params, "customer")
    customer = req.store.get("customer", params["customer"])
    if customer is None or customer.get("_deleted"):
        raise invalid(f"No such customer: '{params['customer']}'", param="customer", code="resource_missing")
    specs = params.get("items")
    if not specs:
        raise invalid("Missing required param: items.", param="items", code="parameter_missing")
    if not isinstance(specs, list):
        raise invalid("Invalid array", param="items")
    prices, quantities = [], []
    for i, spec in enumerate(specs):
        spec = as_dict(spec, f"items[{i}]")
        price = price_for_item(req, spec, f"items[{i}]")
        prices.append(price)
        quantities.append(quantity_of(spec, price, f"items[{i}]"))
    check_compatible(prices)
    behaviour = params.get("payment_behavior", "allow_incomplete")
    if behaviour not in BEHAVIOURS or behaviour == "pending_if_incomplete":
        raise invalid("Invalid payment_behavior: must be one of allow_incomplete, error_if_incomplete or "
                      "default_incomplete", param="payment_behavior")
    collection = params.get("collection_method", "charge_automatically")
    if collection not in ("charge_automatically", "send_invoice"):
        raise invalid("Invalid collection_method", param="collection_method")
    if collection == "send_invoice" and not params.get("days_until_due"):
        raise invalid("Missing required param: days_until_due.", param="days_until_due", code="parameter_missing")

    now = req.store.customer_now(customer)
    trial_end = trial_end_of(req, params, now, prices)
    end_behaviour = end_behaviour_of(params, "create_invoice")
    pm = None
    if params.get("default_payment_method"):
        pm = payment_methods.attached_to(req, params["default_payment_method"], customer, "default_payment_method")
    charge_pm = pm or payments.payment_method_for(req.store, {"default_payment_method": None,
                                                             "customer": customer["id"]})
    due = 0 if trial_end else amount_of(zip(prices, quantities, strict=True))
    charge = due > 0 and collection == "charge_automatically"
    if charge and behaviour != "default_incomplete" and charge_pm is None:
        raise invalid(NO_PAYMENT_METHOD, code="resource_missing")
    if charge and behaviour == "error_if_incomplete" and not payments.charge_succeeds(charge_pm):
        raise card_declined()

    sub = template("subscription")
    sub.update({
        "id": new_id("sub", 24), "application": None, "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
        "billing_cycle_anchor": trial_end or now, "billing_cycle_anchor_config": None, "cancel_at": None,
        "canceled_at": None, "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": collection, "created": now, "currency": prices[0]["currency"], "customer": customer["id"],
        "days_until_due": as_int(params["days_until_due"], "days_until_due") if params.get("days_until_due") else None,
        "default_payment_method": pm["id"] if pm else None, "default_source": None, "default_tax_rates": [],
        "description": nullable(params.get("description")), "discounts": [], "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}, "custom_fields": None,
                             "description": None, "footer": None},
        "latest_invoice": None, "livemode": False, "metadata": merge_metadata({}, params.get("metadata", {})),
        "next_pending_invoice_item_invoice": None, "on_behalf_of": None, "pause_collection": None,
        "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                             "save_default_payment_method": save_default_of(params)},
        "pending_invoice_item_interval": None, "pending_setup_intent": None, "pending_update": None,
        "schedule": None, "start_date": now, "status": "incomplete", "test_clock": customer["test_clock"],
        "transfer_data": None, "trial_end": trial_end, "trial_start": now if trial_end else None,
        "trial_settings": {"end_behavior": {"missing_payment_method": end_behaviour}},
        "cancel_at_period_end": False, "billing_thresholds": None,
        "billing_mode": {"type": "classic", "flexible": None}, "customer_account": None,
        "managed_payments": {"enabled": False}, "billing_schedules": [],
        "_items": [], "_invoices": [],
    })
    sub.pop("items")
    req.store.add(sub)
    for spec, price, quantity in zip(specs, prices, quantities, strict=True):
        metadata = merge_metadata({}, spec.get("metadata", {}))
        new_item(req, sub, price, quantity, metadata, now)
    period_end = trial_end or periods.next_period_end(req.store, sub, now)
    periods.set_period(req.store, sub, now, period_end)
    apply_cancel_fields(req, sub, params, now)

    # The status the first payment will leave, so that `created` carries it (as Stripe's does).
    attempt = charge and behaviour != "default_incomplete"
    if trial_end:
        sub["status"] = "trialing"
    elif not charge or (attempt and payments.charge_succeeds(charge_pm)):
        sub["status"] = "active"
    req.store.emit("customer.subscription.created", render.render_subscription(req.store, sub))
    invoice = invoicing.create_invoice(req.store, sub, "subscription_create", now, now, period_end,
                                       trial=bool(trial_end))
    if attempt or invoice["amount_due"] == 0:
        payments.pay_invoice(req.store, invoice, now, charge_pm)
    elif charge:   # default_incomplete: the customer confirms the first payment (payment_intents.py)
        payments.wait_for_confirmation(req.store, invoice, charge_pm, now)
    req.store.touch(customer["id"])
    return render.render_subscription(req.store, sub)


# -- retrieve / list --------------------------------------------------------------------------

def _require_sub(req: Request, sub_id: str) -> dict:
    return req.store.require("subscription", sub_id)


@route("GET", "/v1/subscriptions/{sub_id}")
def retrieve(req: Request, sub_id: str):
    return render.render_subscription(req.store, _require_sub(req, sub_id))


STATUSES = {"active", "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired", "trialing", "paused",
            "all", "ended"}


@route("GET", "/v1/subscriptions", params={"customer", "price", "status", "collection_method", "test_clock",
                                           "automatic_tax[enabled]", "plan", *range_params("current_period_end"),
                                           *range_params("current_period_start"), *CREATED, *PAGE_PARAMS})
def list_(req: Request):
    params = req.params
    status = params.get("status")
    if status is not None and status not in STATUSES:
        raise invalid(f"Invalid status: must be one of {', '.join(sorted(STATUSES))}", param="status")
    objs = req.store.all("subscription")
    if status is None:
        objs = [s for s in objs if s["status"] not in billing.ENDED]   # Stripe's default hides ended ones
    elif status == "ended":
        objs = [s for s in objs if s["status"] in billing.ENDED]
    elif status != "all":
        objs = [s for s in objs if s["status"] == status]
    if "customer" in params:
        objs = [s for s in objs if s["customer"] == params["customer"]]
    if "test_clock" in params:
        objs = [s for s in objs if s["test_clock"] == params["test_clock"]]
    if params.get("price") or params.get("plan"):
        price = params.get("price") or params.get("plan")
        objs = [s for s in objs if any(i["price"] == price for i in periods.items_of(req.store, s))]
    if "collection_method" in params:
        objs = [s for s in objs if s["collection_method"] == params["collection_method"]]
    objs = created_filter(objs, params)
    return page(req.store, objs, params, "/v1/subscriptions", "subscription")


@route("GET", "/v1/subscriptions/search", params=SEARCH_PARAMS)
def search_subscriptions(req: Request):
    return search(req.store, req.store.all("subscription"), req.params, "subscriptions")


# -- update -----------------------------------------------------------------------------------

@route("POST", "/v1/subscriptions/{sub_id}", params=UPDATE_PARAMS)
def update(req: Request, sub_id: str):
    params = req.params
    sub = _require_sub(req, sub_id)
    if sub["status"] in billing.ENDED and set(params) - {"metadata", "cancellation_details", "expand"}:
        raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
    customer = req.store.get("customer", sub["customer"])
    now = req.store.customer_now(customer)
    before = render.render_subscription(req.store, sub)
    if params.get("payment_behavior") not in (None,) + BEHAVIOURS:
        raise invalid("Invalid payment_behavior", param="payment_behavior")
    check_proration_behaviour(params)
    end_behaviour = end_behaviour_of(params, sub["trial_settings"]["end_behavior"]["missing_payment_method"])
    if "items" in params:
        update_items(req, sub, params["items"], now, params)
    if "metadata" in params:
        sub["metadata"] = merge_metadata(sub["metadata"], params["metadata"])
    if "description" in params:
        sub["description"] = nullable(params["description"])
    if "default_payment_method" in params:
        value = nullable(params["default_payment_method"])
        sub["default_payment_method"] = (payment_methods.attached_to(req, value, customer,
                                                                     "default_payment_method")["id"] if value else None)
    if "cancellation_details" in params:
        details = as_dict(params["cancellation_details"], "cancellation_details")
        for key in ("comment", "feedback"):
            if key in details:
                sub["cancellation_details"][key] = nullable(details[key])
    sub["trial_settings"]["end_behavior"]["missing_payment_method"] = end_behaviour
    apply_cancel_fields(req, sub, params, now)
    end_trial_now = False
    if "trial_end" in params and sub["status"] == "trialing":
        if params["trial_end"] == "now":
            end_trial_now = True
        else:
            end = as_int(params["trial_end"], "trial_end")
            if end <= now:
                raise invalid("Invalid timestamp: must be an integer Unix timestamp in the future.", param="trial_end")
            sub["trial_end"] = sub["billing_cycle_anchor"] = end
            sub["_trial_will_end_sent"] = False
            periods.set_period(req.store, sub, sub["_period_start"], end)
            if sub["cancel_at_period_end"]:
                sub["cancel_at"] = end
    elif "trial_end" in params and params["trial_end"] != "now" and sub["status"] not in billing.ENDED:
        raise invalid("Cannot set a trial end on a subscription that is not trialing.", param="trial_end")
    reset_anchor = params.get("billing_cycle_anchor") == "now" and sub["status"] in ("active", "past_due")
    lifecycle.changed(req.store, sub, before)
    if end_trial_now:
        lifecycle.trial_will_end(req.store, sub, now)
        lifecycle.end_trial(req.store, sub, now)
    elif reset_anchor:
        before = render.render_subscription(req.store, sub)
        sub["billing_cycle_anchor"] = now
        end = periods.next_period_end(req.store, sub, now)
        periods.set_period(req.store, sub, now, end)
        invoice = invoicing.create_invoice(req.store, sub, "subscription_update", now, now, end)
        lifecycle.charge_cycle(req.store, sub, invoice, now)
        lifecycle.changed(req.store, sub, before)
    return render.render_subscription(req.store, sub)


# -- cancel -----------------------------------------------------------------------------------

CANCEL_PARAMS = {"invoice_now", "prorate", *CANCELLATION_DETAILS}


def _cancel(req: Request, sub_id: str):
    sub = req.store.get("subscription", sub_id)
    if sub is None or sub["status"] in billing.ENDED:
        raise missing("subscription", sub_id)
    details = as_dict(req.params.get("cancellation_details"), "cancellation_details")
    for key in ("comment", "feedback"):
        if key in details:
            sub["cancellation_details"][key] = nullable(details[key])
    now = req.store.customer_now(req.store.get("customer", sub["customer"]))
    sub["canceled_at"] = now
    lifecycle.cancel_now(req.store, sub, now)
    return render.render_subscription(req.store, sub)


@route("DELETE", "/v1/subscriptions/{sub_id}", params=CANCEL_PARAMS)
def cancel(req: Request, sub_id: str):
    return _cancel(req, sub_id)


@route("POST", "/v1/subscriptions/{sub_id}/cancel", params=CANCEL_PARAMS)
def cancel_post(req: Request, sub_id: str):
    """Emulator-only alias of DELETE /v1/subscriptions/{id} (the SDK always sends DELETE)."""
    return _cancel(req, sub_id)


# -- resume -----------------------------------------------------------------------------------

@route("POST", "/v1/subscriptions/{sub_id}/resume", params={"billing_cycle_anchor", "proration_behavior",
                                                            "proration_date"})
def resume(req: Request, sub_id: str):
    """A paused subscription (its trial ended without a payment method) starts again: with
    `billing_cycle_anchor=now` (the default) a new period from now, invoiced and charged (active
    when paid, past_due when not); with `unchanged`, the period around now, nothing invoiced."""
    sub = _require_sub(req, sub_id)
    anchor = req.params.get("billing_cycle_anchor", "now")
    if anchor not in ("now", "unchanged"):
        raise invalid("Invalid billing_cycle_anchor: must be one of now or unchanged", param="billing_cycle_anchor")
    check_proration_behaviour(req.params)
    if sub["status"] != "paused":
        raise invalid(f"Only a paused subscription can be resumed; this one is {sub['status']}.")
    now = req.store.customer_now(req.store.get("customer", sub["customer"]))
    lifecycle.resume(req.store, sub, now, reset_anchor=anchor == "now")
    return render.render_subscription(req.store, sub)
