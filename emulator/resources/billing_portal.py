"""Customer Portal sessions, with deep links (`flow_data`), and the test controls that play the
customer in the portal.

`POST /v1/billing_portal/sessions` answers a session with a `url` for the customer and its `flow`:
`payment_method_update`, `subscription_cancel` (`flow_data[subscription_cancel][subscription]`) or
`subscription_update` (`flow_data[subscription_update][subscription]`); a flow's subscription must
be the customer's and not have ended. The controls do what the customer does there:
`POST /_emulator/billing_portal_sessions/{id}/update_payment_method` `{"payment_method": token}`
attaches the card and makes it the customer's default (`payment_method.attached`,
`customer.updated`; subscriptions that had their own default move to it too), and
`…/cancel_subscription` `{"at_period_end": true}` cancels the flow's subscription (or the
customer's only live one) at the period's end, or now with `false`.
"""
from __future__ import annotations

from .. import billing
from ..billing import lifecycle, render
from ..errors import invalid
from ..forms import as_bool, as_dict, require
from ..ids import new_id, random_part
from ..router import Request, route
from ..shapes import template
from . import payment_methods
from .subscription_params import apply_cancel_fields

FLOWS = ("payment_method_update", "subscription_cancel", "subscription_update", "subscription_update_confirm")
AFTER_COMPLETION = ("hosted_confirmation", "portal_homepage", "redirect")
CREATE_PARAMS = {"customer", "return_url", "configuration", "locale", "on_behalf_of", "customer_account",
                 "flow_data[type]", "flow_data[subscription_cancel][subscription]",
                 "flow_data[subscription_cancel][retention]", "flow_data[subscription_update][subscription]",
                 "flow_data[subscription_update_confirm]", "flow_data[after_completion][type]",
                 "flow_data[after_completion][redirect][return_url]",
                 "flow_data[after_completion][hosted_confirmation][custom_message]"}
CONFIGURATION = "bpc_emulator_default"   # the account's default portal configuration


def _flow_subscription(req: Request, flow: dict, kind: str, customer: dict) -> str:
    param = f"flow_data[{kind}][subscription]"
    details = as_dict(flow.get(kind), f"flow_data[{kind}]")
    if not details.get("subscription"):
        raise invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")
    sub = req.store.get("subscription", details["subscription"])
    if sub is None or sub["customer"] != customer["id"]:
        raise invalid(f"No such subscription: '{details['subscription']}'", param=param, code="resource_missing")
    if sub["status"] in billing.ENDED:
        raise invalid("You can't create a portal session for a subscription that has already been canceled.",
                      param=param)
    return sub["id"]


def _flow(req: Request, customer: dict) -> dict | None:
    flow_data = as_dict(req.params.get("flow_data"), "flow_data")
    if not flow_data:
        return None
    kind = flow_data.get("type")
    if kind not in FLOWS:
        raise invalid(f"Invalid flow_data[type]: must be one of {', '.join(FLOWS)}", param="flow_data[type]")
    if kind == "subscription_update_confirm":
        raise invalid("The subscription_update_confirm flow is not supported by the emulator.", param="flow_data[type]")
    after = as_dict(flow_data.get("after_completion"), "flow_data[after_completion]")
    after_type = after.get("type", "portal_homepage")
    if after_type not in AFTER_COMPLETION:
        raise invalid("Invalid flow_data[after_completion][type]: must be one of hosted_confirmation, "
                      "portal_homepage, or redirect", param="flow_data[after_completion][type]")
    redirect = as_dict(after.get("redirect"), "flow_data[after_completion][redirect]")
    if after_type == "redirect" and not redirect.get("return_url"):
        raise invalid("Missing required param: flow_data[after_completion][redirect][return_url].",
                      param="flow_data[after_completion][redirect][return_url]", code="parameter_missing")
    confirmation = as_dict(after.get("hosted_confirmation"), "flow_data[after_completion][hosted_confirmation]")
    flow = {
        "after_completion": {
            "hosted_confirmation": ({"custom_message": confirmation.get("custom_message")}
                                    if after_type == "hosted_confirmation" else None),
            "redirect": {"return_url": redirect["return_url"]} if after_type == "redirect" else None,
            "type": after_type},
        "subscription_cancel": None, "subscription_update": None, "subscription_update_confirm": None, "type": kind,
    }
    if kind == "subscription_cancel":
        flow["subscription_cancel"] = {"retention": None,
                                       "subscription": _flow_subscription(req, flow_data, kind, customer)}
    if kind == "subscription_update":
        flow["subscription_update"] = {"subscription": _flow_subscription(req, flow_data, kind, customer)}
    return flow


@route("POST", "/v1/billing_portal/sessions", params=CREATE_PARAMS)
def create(req: Request):
    require(req.params, "customer")
    customer = req.store.require("customer", req.params["customer"], param="customer")
    session = template("billing_portal.session")
    session.update({
        "id": new_id("bps", 24), "configuration": req.params.get("configuration", CONFIGURATION),
        "created": req.store.customer_now(customer), "customer": customer["id"], "flow": _flow(req, customer),
        "livemode": False, "locale": req.params.get("locale"), "on_behalf_of": None,
        "return_url": req.params.get("return_url"), "customer_account": None,
        "url": f"https://billing.stripe.com/p/session/test_{random_part(40)}",
    })
    req.store.add(session)
    return req.store.render(session)


# -- the customer in the portal (test controls) -----------------------------------------------

def _session(req: Request, session_id: str) -> tuple[dict, dict]:
    session = req.store.require("billing_portal.session", session_id)
    return session, req.store.require("customer", session["customer"])


@route("POST", "/_emulator/billing_portal_sessions/{session_id}/update_payment_method", params={"payment_method"})
def update_payment_method(req: Request, session_id: str):
    """The customer adds a card in the portal; it becomes their default payment method."""
    session, customer = _session(req, session_id)
    require(req.params, "payment_method")
    pm = payment_methods.resolve(req, req.params["payment_method"], "payment_method")
    before = req.store.render(customer)
    payment_methods.attach(req, pm, customer)
    customer["invoice_settings"]["default_payment_method"] = pm["id"]
    req.store.emit_update("customer.updated", before, req.store.render(customer))
    for sub in req.store.all("subscription"):
        if sub["customer"] == customer["id"] and sub["status"] not in billing.ENDED \
                and sub["default_payment_method"] not in (None, pm["id"]):
            sub_before = render.render_subscription(req.store, sub)
            sub["default_payment_method"] = pm["id"]
            lifecycle.changed(req.store, sub, sub_before)
    return req.store.render(pm)


@route("POST", "/_emulator/billing_portal_sessions/{session_id}/cancel_subscription", params={"at_period_end"})
def cancel_subscription(req: Request, session_id: str):
    """The customer cancels in the portal: at the period's end (the default), or now."""
    session, customer = _session(req, session_id)
    flow = session["flow"] or {}
    at_period_end = as_bool(req.params.get("at_period_end", True), "at_period_end")
    if flow.get("subscription_cancel"):
        sub = req.store.require("subscription", flow["subscription_cancel"]["subscription"])
    else:
        live = [s for s in req.store.all("subscription")
                if s["customer"] == customer["id"] and s["status"] not in billing.ENDED]
        if len(live) != 1:
            raise invalid(f"The customer has {len(live)} live subscriptions; open the portal with a "
                          "subscription_cancel flow to name one.")
        sub = live[0]
    if sub["status"] in billing.ENDED:
        raise invalid("This subscription has already been canceled.")
    now = req.store.customer_now(customer)
    if at_period_end:
        before = render.render_subscription(req.store, sub)
        apply_cancel_fields(req, sub, {"cancel_at_period_end": "true"}, now)
        lifecycle.changed(req.store, sub, before)
    else:
        sub["canceled_at"] = now
        lifecycle.cancel_now(req.store, sub, now)
    return render.render_subscription(req.store, sub)
