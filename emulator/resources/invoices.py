"""Invoices: retrieve, list, lines, pay (a manual retry, e.g. after the card was replaced), void."""
from __future__ import annotations

from .. import billing
from ..billing import lifecycle, payments, render
from ..errors import card_declined, invalid
from ..forms import as_bool
from ..lists import CREATED, PAGE_PARAMS, created_filter, page, range_params
from ..router import Request, route
from . import payment_methods


@route("GET", "/v1/invoices/{invoice_id}")
def retrieve(req: Request, invoice_id: str):
    return req.store.render(req.store.require("invoice", invoice_id))


@route("GET", "/v1/invoices", params={"customer", "subscription", "status", "collection_method",
                                      *range_params("due_date"), *CREATED, *PAGE_PARAMS})
def list_(req: Request):
    objs = req.store.all("invoice")
    for key in ("customer", "subscription", "status", "collection_method"):
        if key in req.params:
            objs = [i for i in objs if i[key] == req.params[key]]
    objs = created_filter(objs, req.params)
    return page(req.store, objs, req.params, "/v1/invoices", "invoice")


@route("GET", "/v1/invoices/{invoice_id}/lines", params=PAGE_PARAMS)
def lines(req: Request, invoice_id: str):
    invoice = req.store.require("invoice", invoice_id)
    data = invoice["lines"]["data"]
    return {"object": "list", "data": data, "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"}


@route("POST", "/v1/invoices/{invoice_id}/pay", params={"payment_method", "paid_out_of_band", "off_session", "forgive",
                                                        "source", "mandate"})
def pay(req: Request, invoice_id: str):
    invoice = req.store.require("invoice", invoice_id)
    if invoice["status"] != "open":
        raise invalid(f"Invoice is already {invoice['status']}" if invoice["status"] in ("paid", "void")
                      else "You can only pay an open invoice.", code="invoice_not_open" if invoice["status"] != "paid"
                      else "invoice_already_paid")
    sub = req.store.get("subscription", invoice["subscription"]) if invoice["subscription"] else None
    customer = req.store.get("customer", invoice["customer"])
    now = req.store.customer_now(customer)
    before = render.render_subscription(req.store, sub) if sub else None
    if as_bool(req.params.get("paid_out_of_band", False), "paid_out_of_band"):
        invoice.update({"status": "paid", "amount_remaining": 0, "next_payment_attempt": None})
        invoice["status_transitions"]["paid_at"] = now
        req.store.emit("invoice.paid", req.store.render(invoice))
    else:
        pm: dict | None
        if req.params.get("payment_method"):
            pm = payment_methods.attached_to(req, req.params["payment_method"], customer, "payment_method")
        else:
            pm = payments.payment_method_for(req.store, sub) if sub else None
        if not payments.pay_invoice(req.store, invoice, now, pm):
            raise card_declined()
    if sub is not None and before is not None:
        lifecycle.settle_after_payment(req.store, sub, before)
    return req.store.render(invoice)


@route("POST", "/v1/invoices/{invoice_id}/void")
def void(req: Request, invoice_id: str):
    invoice = req.store.require("invoice", invoice_id)
    if invoice["status"] != "open":
        raise invalid("You can only void an open invoice.", code="invoice_not_open")
    now = req.store.customer_now(req.store.get("customer", invoice["customer"]))
    invoice.update({"status": "void", "next_payment_attempt": None, "amount_remaining": 0})
    invoice["status_transitions"]["voided_at"] = now
    req.store.emit("invoice.voided", req.store.render(invoice))
    sub = req.store.get("subscription", invoice["subscription"]) if invoice["subscription"] else None
    if sub is not None and sub["status"] not in billing.ENDED:
        lifecycle.settle_after_payment(req.store, sub, render.render_subscription(req.store, sub))
    return req.store.render(invoice)
