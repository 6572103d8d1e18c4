"""What a subscription request may say, read and checked: item specs (price, quantity, one
currency and interval), trial ends, payment and proration behaviours, cancellation fields."""
from __future__ import annotations

from .. import billing
from ..errors import invalid
from ..forms import as_bool, as_dict, as_int, nullable
from ..router import Request

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


def price_for_item(req: Request, spec: dict, param: str) -> dict:
    if spec.get("price_data"):
        raise invalid("price_data is not supported by the emulator; create a price first.",
                      param=f"{param}[price_data]")
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


def quantity_of(spec: dict, price: dict, param: str) -> int | None:
    metered = price["recurring"]["usage_type"] == "metered"
    if "quantity" in spec and spec["quantity"] != "":
        if metered:
            raise invalid("Quantity should not be specified where usage_type is `metered`. Remove quantity from "
                          f"`{param}[quantity]`", param=f"{param}[quantity]")
        return as_int(spec["quantity"], f"{param}[quantity]", minimum=0)
    return None if metered else 1


def check_compatible(prices: list[dict]) -> None:
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


def amount_of(prices_and_quantities) -> int:
    return sum((p["unit_amount"] or 0) * (q or 0) for p, q in prices_and_quantities
               if p["recurring"]["usage_type"] == "licensed")


def end_behaviour_of(params: dict, current: str) -> str:
    """`trial_settings[end_behavior][missing_payment_method]`: what a trial ending without a payment
    method does (billing.end_trial)."""
    settings = as_dict(params.get("trial_settings"), "trial_settings")
    value = as_dict(settings.get("end_behavior"), "trial_settings[end_behavior]").get("missing_payment_method", current)
    if value not in END_BEHAVIOURS:
        raise invalid("Invalid trial_settings[end_behavior][missing_payment_method]: must be one of cancel, "
                      "create_invoice, or pause", param="trial_settings[end_behavior][missing_payment_method]")
    return value


def check_proration_behaviour(params: dict) -> None:
    if params.get("proration_behavior") not in (None, "create_prorations", "none", "always_invoice"):
        raise invalid("Invalid proration_behavior: must be one of create_prorations, always_invoice, or none",
                      param="proration_behavior")


def trial_end_of(req: Request, params: dict, now: int, prices: list[dict]) -> int | None:
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


def apply_cancel_fields(req: Request, sub: dict, params: dict, now: int) -> None:
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


def save_default_of(params: dict) -> str:
    """`payment_settings[save_default_payment_method]`: `on_subscription` or `off` (the default)."""
    settings = as_dict(params.get("payment_settings"), "payment_settings")
    value = settings.get("save_default_payment_method", "off")
    if value not in ("on_subscription", "off"):
        raise invalid("Invalid payment_settings[save_default_payment_method]: must be one of on_subscription or off",
                      param="payment_settings[save_default_payment_method]")
    return value
