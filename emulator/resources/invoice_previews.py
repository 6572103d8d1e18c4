"""Invoice previews: `POST /v1/invoices/create_preview`, what the subscription's next invoice will
be, or what a change would cost (`subscription_details[items]`, `[proration_date]`,
`[proration_behavior]`). Nothing is stored; the preview's `id` is `upcoming_in_…`, its
`next_payment_attempt` when it will be charged. The prorations are the same lines the change
itself bills (billing/prorations.py), so a change sent with the preview's `proration_date` costs
exactly the preview's `amount_due`."""
from __future__ import annotations

import copy

from .. import billing
from ..billing import invoicing, periods, prorations
from ..errors import invalid
from ..forms import as_dict, as_hash_list
from ..ids import random_part
from ..router import Request, route
from ..store import public
from .subscription_params import check_compatible, price_for_item, quantity_of

ITEMS = ("id", "price", "quantity", "deleted", "clear_usage", "metadata", "discounts", "tax_rates",
         "billing_thresholds", "price_data")
PARAMS = {"customer", "subscription", "automatic_tax[enabled]", "currency", "issuer", "preview_mode", "on_behalf_of",
          "customer_details", "discounts", "invoice_items", "schedule", "schedule_details",
          *(f"subscription_details[{k}]" for k in ("proration_date", "proration_behavior", "cancel_at_period_end",
                                                   "billing_cycle_anchor", "trial_end", "default_tax_rates",
                                                   "cancel_at", "cancel_now", "resume_at", "start_date")),
          *(f"subscription_details[items][{k}]" for k in ITEMS)}


def _subscription(req: Request) -> dict:
    params = req.params
    if not params.get("subscription"):
        if not params.get("customer"):
            raise invalid("Missing required param: customer.", param="customer", code="parameter_missing")
        raise invalid("Previewing an invoice without a subscription is not supported by the emulator.",
                      param="subscription")
    sub = req.store.require("subscription", params["subscription"], param="subscription")
    if params.get("customer") and params["customer"] != sub["customer"]:
        raise invalid("The subscription does not belong to this customer.", param="subscription")
    if sub["status"] in billing.ENDED:
        raise invalid("The subscription has ended; it has no upcoming invoice.", param="subscription")
    return sub


def _items_after(req: Request, sub: dict, specs: list[dict]) -> dict:
    """What each item would bill after the change (item id → (price id, quantity))."""
    billed = prorations.billed_items(req.store, sub)
    for n, spec in enumerate(specs):
        param = f"subscription_details[items][{n}]"
        if spec.get("id"):
            if spec["id"] not in billed:
                raise invalid(f"Subscription item {spec['id']} does not belong to this subscription.",
                              param=f"{param}[id]", code="resource_missing")
            if spec.get("deleted") in ("true", True):
                billed.pop(spec["id"])
                continue
            price = (price_for_item(req, spec, param) if spec.get("price")
                     else req.store.stored("price", billed[spec["id"]][0]))
            quantity = quantity_of(spec, price, param) if "quantity" in spec else billed[spec["id"]][1]
        else:
            price = price_for_item(req, spec, param)
            quantity = quantity_of(spec, price, param)
        billed[spec["id"] or f"si_preview{n}"] = (price["id"], quantity or 0)
    if not billed:
        raise invalid("A subscription must have at least one active item.", param="subscription_details[items]")
    check_compatible([req.store.stored("price", price_id) for price_id, _ in billed.values()])
    return billed


@route("POST", "/v1/invoices/create_preview", params=PARAMS)
def create_preview(req: Request):
    sub = _subscription(req)
    details = as_dict(req.params.get("subscription_details"), "subscription_details")
    now = req.store.customer_now(req.store.get("customer", sub["customer"]))
    behaviour = details.get("proration_behavior", "create_prorations")
    if behaviour not in ("create_prorations", "none", "always_invoice"):
        raise invalid("Invalid subscription_details[proration_behavior]: must be one of create_prorations, "
                      "always_invoice, or none", param="subscription_details[proration_behavior]")
    at = prorations.proration_date(sub, details.get("proration_date"), "subscription_details[proration_date]", now)
    specs = as_hash_list(details.get("items"), "subscription_details[items]")
    before = prorations.billed_items(req.store, sub)
    after = _items_after(req, sub, specs)
    changes = {item_id: (before.get(item_id), after.get(item_id)) for item_id in {*before, *after}}
    lines = [] if behaviour == "none" else prorations.proration_lines(req.store, sub, changes, at)
    invoice_id = f"upcoming_in_{random_part(24)}"
    if behaviour == "always_invoice":
        charged_at, period = now, (now, now)
    else:
        if not specs and sub["cancel_at_period_end"]:
            raise invalid(f"No upcoming invoices for customer: {sub['customer']}", code="invoice_upcoming_none",
                          status=404)
        start = sub["trial_end"] if sub["status"] == "trialing" else sub["_period_end"]
        end = periods.next_period_end(req.store, sub, start)
        items = [{"id": item_id, "price": price_id, "quantity": quantity}
                 for item_id, (price_id, quantity) in after.items()]
        lines = (copy.deepcopy(sub.get("_pending_prorations", [])) + lines
                 + invoicing.period_lines(req.store, sub, invoice_id, start, end, items=items,
                                          usage_from=sub["_period_start"]))
        charged_at, period = start, (sub["_period_start"], start)
    for each in lines:
        each["invoice"] = invoice_id
    invoice = invoicing.build_invoice(req.store, sub, "upcoming" if behaviour != "always_invoice"
                                      else "subscription_update", now, invoice_id, lines, period=period)
    invoice.update({"next_payment_attempt": charged_at, "hosted_invoice_url": None, "invoice_pdf": None,
                    "created": charged_at if behaviour != "always_invoice" else now})
    return public(invoice)
