"""Subscriptions and subscription items.

Creation charges the first invoice at once. `payment_behavior` follows Stripe:
`allow_incomplete` (the default) creates the subscription `incomplete` when the first payment
fails; `error_if_incomplete` answers 402 and creates nothing; `default_incomplete` leaves the
first invoice open and the subscription `incomplete` until it is paid. Without a trial, a paid
subscription needs a payment method (the subscription's or the customer's invoice default).

Changes of price or quantity take effect in place (same `si_` ids) and are billed from the next
invoice: prorations are not computed. Cancelling twice is a 404, as in Stripe. A trial that ends
without a payment method pauses or cancels the subscription when
`trial_settings[end_behavior][missing_payment_method]` says so; `POST …/resume` resumes it.
"""
from __future__ import annotations

from .. import billing
from ..errors import card_declined, invalid, missing
from ..forms import as_bool, as_dict, as_int, merge_metadata, nullable, require
from ..ids import new_id
from ..lists import CREATED, PAGE_PARAMS, created_filter, page, range_params
from ..router import Request, route
from ..search import SEARCH_PARAMS, search
from ..shapes import deleted, template
from . import payment_methods

ITEM_PARAMS = {"price", "price_data", "quantity", "metadata", "billing_thresholds", "discounts", "plan", "tax_rates"}
CANCELLATION_DETAILS = {"cancellation_details[comment]", "cancellation_details[feedback]"}
WRITABLE = {"trial_period_days", "trial_end", "trial_from_plan", "default_payment_method", "payment_behavior",
            "metadata", "description", "cancel_at_period_end", "cancel_at", "proration_behavior", "collection_method",
            "days_until_due", "billing_cycle_anchor", "off_session", "automatic_tax",
            "trial_settings[end_behavior][missing_payment_method]", "payment_settings", "add_invoice_items",
            "application_fee_percent", "default_tax_rates", "discounts", "on_behalf_of", "transfer_data",
            "pending_invoice_item_interval", "billing_thresholds", "default_source", "invoice_settings"}
CREATE_PARAMS = WRITABLE | {f"items[{key}]" for key in ITEM_PARAMS} | {
    "customer", "currency", "backdate_start_date", "billing_mode", "customer_account"}
UPDATE_PARAMS = WRITABLE | {f"items[{key}]" for key in ITEM_PARAMS | {"id", "deleted", "clear_usage"}} | {
    *CANCELLATION_DETAILS, "pause_collection", "proration_date"}
END_BEHAVIOURS = ("cancel", "create_invoice", "pause")   # trial_settings[end_behavior][missing_payment_method]
BEHAVIOURS = ("allow_incomplete", "error_if_incomplete", "default_incomplete", "pending_if_incomplete")
NO_PAYMENT_METHOD = ("This customer has no attached payment source or default payment method. Please consider adding "
                     "a default payment method. For more information, visit "
                     "https://docs.stripe.com/billing/subscriptions/payment-methods-setting#payment-method-priority.")


def _price_for_item(req: Request, spec: dict, param: str) -> dict:
    if spec.get("price_data"):
        raise invalid("price_data is not supported by the emulator; create a price first.", param=f"{param}[price_data]")
    if not spec.get("price") and spec.get("plan"):
        spec = {**spec, "price": spec["plan"]}
    require_param = f"{param}[price]"
    if not spec.get("price"):
        raise invalid(f"Missing required param: {require_param}.", param=require_param, code="parameter_missing")
    price = req.store.get("price", spec["price"])
    if price is None:
        raise invalid(f"No such price: '{spec['price']}'", param=require_param, code="resource_missing")
    if not price["active"]:
        raise invalid("The price specified is inactive. This field only accepts active prices.", param=require_param)
    if price["type"] != "recurring":
        raise invalid("The price specified is set to `type=one_time` but this field only accepts prices with "
                      "`type=recurring`.", param=require_param)
    return price


def _quantity(spec: dict, price: dict, param: str) -> int | None:
    metered = price["recurring"]["usage_type"] == "metered"
    if "quantity" in spec and spec["quantity"] != "":
        if metered:
            raise invalid("Quantity should not be specified where usage_type is `metered`. Remove quantity from "
                          f"`{param}[quantity]`", param=f"{param}[quantity]")
        return as_int(spec["quantity"], f"{param}[quantity]", minimum=0)
    return None if metered else 1


def _check_compatible(prices: list[dict]) -> None:
    first = prices[0]
    for price in prices[1:]:
        if price["currency"] != first["currency"]:
            raise invalid("Currency and interval fields must match across all plans on this subscription. Found "
                          "mismatch in currency field.", param="items")
        if (price["recurring"]["interval"], price["recurring"]["interval_count"]) != (
                first["recurring"]["interval"], first["recurring"]["interval_count"]):
            raise invalid("Currency and interval fields must match across all plans on this subscription. Found "
                          "mismatch in interval field.", param="items")
    ids = [p["id"] for p in prices]
    if len(set(ids)) != len(ids):
        raise invalid("Cannot add multiple subscription items with the same price.", param="items")


def _new_item(req: Request, sub: dict, price: dict, quantity, metadata, now: int) -> dict:
    item = template("subscription_item")
    item.update({"id": new_id("si"), "created": now, "discounts": [], "metadata": metadata, "price": price["id"],
                 "quantity": quantity, "subscription": sub["id"], "tax_rates": [], "billing_thresholds": None,
                 "current_period_start": sub.get("_period_start"), "current_period_end": sub.get("_period_end")})
    item.pop("plan")
    req.store.add(item)
    sub["_items"].append(item["id"])
    return item


def _amount(prices_and_quantities) -> int:
    return sum((p["unit_amount"] or 0) * (q or 0) for p, q in prices_and_quantities
               if p["recurring"]["usage_type"] == "licensed")


def _end_behaviour(params: dict, current: str) -> str:
    """`trial_settings[end_behavior][missing_payment_method]`: what a trial ending without a payment
    method does (billing.end_trial)."""
    settings = as_dict(params.get("trial_settings"), "trial_settings")
    value = as_dict(settings.get("end_behavior"), "trial_settings[end_behavior]").get("missing_payment_method", current)
    if value not in END_BEHAVIOURS:
        raise invalid("Invalid trial_settings[end_behavior][missing_payment_method]: must be one of cancel, "
                      "create_invoice, or pause", param="trial_settings[end_behavior][missing_payment_method]")
    return value


def _check_proration_behaviour(params: dict) -> None:
    if params.get("proration_behavior") not in (None, "create_prorations", "none", "always_invoice"):
        raise invalid("Invalid proration_behavior: must be one of create_prorations, always_invoice, or none",
                      param="proration_behavior")


def _trial_end(req: Request, params: dict, now: int, prices: list[dict]) -> int | None:
    if params.get("trial_end") not in (None, ""):
        if params["trial_end"] == "now":
            return None
        end = as_int(params["trial_end"], "trial_end")
        if end <= now:
            raise invalid("Invalid timestamp: must be an integer Unix timestamp in the future.", param="trial_end")
        if end > now + 730 * billing.DAY:
            raise invalid("Invalid timestamp: can be no more than two years in the future.", param="trial_end")
        return end
    if params.get("trial_period_days") not in (None, ""):
        days = as_int(params["trial_period_days"], "trial_period_days", minimum=0, maximum=730)
        return now + days * billing.DAY if days else None
    if as_bool(params.get("trial_from_plan", False), "trial_from_plan"):
        days = max((p["recurring"]["trial_period_days"] or 0) for p in prices)
        return now + days * billing.DAY if days else None
    return None


# -- create -----------------------------------------------------------------------------------

@route("POST", "/v1/subscriptions", params=CREATE_PARAMS)
def create(req: Request):
    params = req.params
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
        price = _price_for_item(req, spec, f"items[{i}]")
        prices.append(price)
        quantities.append(_quantity(spec, price, f"items[{i}]"))
    _check_compatible(prices)
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
    trial_end = _trial_end(req, params, now, prices)
    end_behaviour = _end_behaviour(params, "create_invoice")
    pm = None
    if params.get("default_payment_method"):
        pm = payment_methods.attached_to(req, params["default_payment_method"], customer, "default_payment_method")
    charge_pm = pm or billing.payment_method_for(req.store, {"default_payment_method": None,
                                                             "customer": customer["id"]})
    due = 0 if trial_end else _amount(zip(prices, quantities))
    charge = due > 0 and collection == "charge_automatically"
    if charge and behaviour != "default_incomplete" and charge_pm is None:
        raise invalid(NO_PAYMENT_METHOD, code="resource_missing")
    if charge and behaviour == "error_if_incomplete" and not payment_methods.charge_succeeds(charge_pm):
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
                             "save_default_payment_method": "off"},
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
    for spec, price, quantity in zip(specs, prices, quantities):
        metadata = merge_metadata({}, spec.get("metadata", {}))
        _new_item(req, sub, price, quantity, metadata, now)
    period_end = trial_end or billing.next_period_end(req.store, sub, now)
    billing.set_period(req.store, sub, now, period_end)
    _apply_cancel_fields(req, sub, params, now)

    # The status the first payment will leave, so that `created` carries it (as Stripe's does).
    attempt = charge and behaviour != "default_incomplete"
    if trial_end:
        sub["status"] = "trialing"
    elif not charge or (attempt and payment_methods.charge_succeeds(charge_pm)):
        sub["status"] = "active"
    req.store.emit("customer.subscription.created", billing.render_subscription(req.store, sub))
    invoice = billing.create_invoice(req.store, sub, "subscription_create", now, now, period_end, trial=bool(trial_end))
    if attempt or invoice["amount_due"] == 0:
        billing.pay_invoice(req.store, invoice, now, charge_pm)
    req.store.touch(customer["id"])
    return billing.render_subscription(req.store, sub)


def _apply_cancel_fields(req: Request, sub: dict, params: dict, now: int) -> None:
    if "cancel_at_period_end" in params:
        if as_bool(params["cancel_at_period_end"], "cancel_at_period_end"):
            sub.update({"cancel_at_period_end": True, "cancel_at": sub["_period_end"], "canceled_at": now})
            sub["cancellation_details"]["reason"] = "cancellation_requested"
        else:
            sub.update({"cancel_at_period_end": False, "cancel_at": None, "canceled_at": None})
            sub["cancellation_details"]["reason"] = None
    if "cancel_at" in params:
        value = nullable(params["cancel_at"])
        if value is None:
            sub.update({"cancel_at": None, "canceled_at": None, "cancel_at_period_end": False})
            sub["cancellation_details"]["reason"] = None
        else:
            if value == "min_period_end":
                value = sub["_period_end"]
            at = as_int(value, "cancel_at")
            sub.update({"cancel_at": at, "canceled_at": now, "cancel_at_period_end": at == sub["_period_end"]})
            sub["cancellation_details"]["reason"] = "cancellation_requested"


# -- retrieve / list --------------------------------------------------------------------------

def _require_sub(req: Request, sub_id: str) -> dict:
    return req.store.require("subscription", sub_id)


@route("GET", "/v1/subscriptions/{sub_id}")
def retrieve(req: Request, sub_id: str):
    return billing.render_subscription(req.store, _require_sub(req, sub_id))


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
        objs = [s for s in objs if any(i["price"] == price for i in billing.items_of(req.store, s))]
    if "collection_method" in params:
        objs = [s for s in objs if s["collection_method"] == params["collection_method"]]
    objs = created_filter(objs, params)
    return page(req.store, objs, params, "/v1/subscriptions", "subscription")


@route("GET", "/v1/subscriptions/search", params=SEARCH_PARAMS)
def search_subscriptions(req: Request):
    return search(req.store, req.store.all("subscription"), req.params, "subscriptions")


# -- update -----------------------------------------------------------------------------------

def _update_items(req: Request, sub: dict, specs, now: int) -> None:
    if not isinstance(specs, list):
        raise invalid("Invalid array", param="items")
    current = {i["id"]: i for i in billing.items_of(req.store, sub)}
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
            price = _price_for_item(req, spec, param) if spec.get("price") or spec.get("plan") else \
                req.store.get("price", item["price"])
            quantity = _quantity(spec, price, param) if "quantity" in spec else (
                item["quantity"] if price["recurring"]["usage_type"] == "licensed" else None)
            if price["recurring"]["usage_type"] == "licensed" and quantity is None:
                quantity = 1
            changes[item["id"]] = (price, quantity, spec.get("metadata"))
            plan[item["id"]] = (price, quantity)
        else:
            price = _price_for_item(req, spec, param)
            quantity = _quantity(spec, price, param)
            additions.append((price, quantity, merge_metadata({}, spec.get("metadata", {}))))
    prices = [p for p, _ in plan.values()] + [p for p, _, _ in additions]
    if not prices:
        raise invalid("A subscription must have at least one active item.", param="items")
    _check_compatible(prices)
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
        _new_item(req, sub, price, quantity, metadata, now)


@route("POST", "/v1/subscriptions/{sub_id}", params=UPDATE_PARAMS)
def update(req: Request, sub_id: str):
    params = req.params
    sub = _require_sub(req, sub_id)
    if sub["status"] in billing.ENDED and set(params) - {"metadata", "cancellation_details", "expand"}:
        raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
    customer = req.store.get("customer", sub["customer"])
    now = req.store.customer_now(customer)
    before = billing.render_subscription(req.store, sub)
    if params.get("payment_behavior") not in (None,) + BEHAVIOURS:
        raise invalid("Invalid payment_behavior", param="payment_behavior")
    _check_proration_behaviour(params)
    end_behaviour = _end_behaviour(params, sub["trial_settings"]["end_behavior"]["missing_payment_method"])
    if "items" in params:
        _update_items(req, sub, params["items"], now)
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
    _apply_cancel_fields(req, sub, params, now)
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
            billing.set_period(req.store, sub, sub["_period_start"], end)
            if sub["cancel_at_period_end"]:
                sub["cancel_at"] = end
    elif "trial_end" in params and params["trial_end"] != "now" and sub["status"] not in billing.ENDED:
        raise invalid("Cannot set a trial end on a subscription that is not trialing.", param="trial_end")
    reset_anchor = params.get("billing_cycle_anchor") == "now" and sub["status"] in ("active", "past_due")
    billing._changed(req.store, sub, before)
    if end_trial_now:
        billing.trial_will_end(req.store, sub, now)
        billing.end_trial(req.store, sub, now)
    elif reset_anchor:
        before = billing.render_subscription(req.store, sub)
        sub["billing_cycle_anchor"] = now
        end = billing.next_period_end(req.store, sub, now)
        billing.set_period(req.store, sub, now, end)
        invoice = billing.create_invoice(req.store, sub, "subscription_update", now, now, end)
        billing._charge_cycle(req.store, sub, invoice, now)
        billing._changed(req.store, sub, before)
    return billing.render_subscription(req.store, sub)


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
    billing.cancel_now(req.store, sub, now)
    return billing.render_subscription(req.store, sub)


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
    _check_proration_behaviour(req.params)
    if sub["status"] != "paused":
        raise invalid(f"Only a paused subscription can be resumed; this one is {sub['status']}.")
    now = req.store.customer_now(req.store.get("customer", sub["customer"]))
    billing.resume(req.store, sub, now, reset_anchor=anchor == "now")
    return billing.render_subscription(req.store, sub)


# -- subscription items -----------------------------------------------------------------------

@route("GET", "/v1/subscription_items", params={"subscription", *PAGE_PARAMS})
def list_items(req: Request):
    require(req.params, "subscription")
    sub = req.store.require("subscription", req.params["subscription"], param="subscription")
    body = page(req.store, billing.items_of(req.store, sub), req.params,
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
    before = billing.render_subscription(req.store, sub)
    known = set(sub["_items"])
    _update_items(req, sub, specs, now)
    billing._changed(req.store, sub, before)
    item_id = next((i for i in sub["_items"] if i not in known), None) if pick_new else specs[0].get("id")
    item = req.store.get("subscription_item", item_id)
    return req.store.render(item) if item and not item.get("_deleted") else {}


