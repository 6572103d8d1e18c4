"""Invoices: their lines (licensed and metered), the draft, numbering and finalization. Paying
them is `payments`."""
from __future__ import annotations

from ..ids import new_id
from ..shapes import template
from ..store import Store
from .periods import items_of
from .usage import aggregated_usage


def usage_quantity(store: Store, meter_id: str, customer_id: str, start: int, end: int) -> int:
    meter = store.get("billing.meter", meter_id)
    return int(aggregated_usage(store, meter, customer_id, start, end)) if meter else 0


def line(store: Store, sub: dict, item: dict, invoice_id: str, start: int, end: int, *, quantity: int,
         trial: bool = False, amount: int | None = None, description: str | None = None,
         proration: bool = False) -> dict:
    """One invoice line for a subscription item (`item` needs only `id` and `price`); a proration
    line says its own amount and description."""
    price = store.stored("price", item["price"])
    product = store.get("product", price["product"])
    if amount is None:
        amount = 0 if trial else (price["unit_amount"] or 0) * quantity
    name = product["name"] if product else price["id"]
    line = template("invoice")["lines"]["data"][0]
    line.update({
        "amount": amount, "currency": price["currency"],
        "description": description or (f"Trial period for {name}" if trial else f"{quantity} × {name}"),
        "discount_amounts": [], "discountable": True, "discounts": [], "id": new_id("il", 24),
        "invoice": invoice_id, "livemode": False, "metadata": {}, "period": {"start": start, "end": end},
        "quantity": quantity, "subscription": sub["id"], "pretax_credit_amounts": [], "taxes": [],
        "subtotal": amount, "quantity_decimal": str(quantity),
        "parent": {"invoice_item_details": None, "type": "subscription_item_details",
                   "subscription_item_details": {"invoice_item": None, "proration": proration,
                                                 "proration_details": {"credited_items": None},
                                                 "subscription": sub["id"], "subscription_item": item["id"]}},
        "pricing": {"type": "price_details", "price_details": {"price": price["id"], "product": price["product"]},
                    "unit_amount_decimal": price["unit_amount_decimal"]},
    })
    return line


def period_lines(store: Store, sub: dict, invoice_id: str, start: int, end: int, *, items: list[dict] | None = None,
                 trial: bool = False, usage_from: int | None = None) -> list[dict]:
    """The lines of a period's invoice: licensed items for [start, end), metered usage for
    [usage_from, start) (`items`: what to bill, the subscription's own by default)."""
    lines = []
    for item in items if items is not None else items_of(store, sub):
        price = store.stored("price", item["price"])
        if (price["recurring"] or {}).get("usage_type") == "metered":
            if usage_from is None:
                continue
            quantity = usage_quantity(store, price["recurring"]["meter"], sub["customer"], usage_from, start)
            lines.append(line(store, sub, item, invoice_id, usage_from, start, quantity=quantity))
        else:
            lines.append(line(store, sub, item, invoice_id, start, end, quantity=item["quantity"] or 0, trial=trial))
    return lines


def create_invoice(store: Store, sub: dict, reason: str, now: int, start: int, end: int, *,
                   trial: bool = False, usage_from: int | None = None, lines: list[dict] | None = None) -> dict:
    """Create and finalize a subscription invoice (Stripe drafts renewals for an hour first;
    we finalize at once, so a renewal is charged at the period boundary). A renewal also bills the
    prorations pending from changes during the period; `lines` replaces the period's lines."""
    invoice_id = new_id("in", 24)
    if lines is None:
        lines = period_lines(store, sub, invoice_id, start, end, trial=trial, usage_from=usage_from)
        if reason == "subscription_cycle":
            lines = sub.pop("_pending_prorations", []) + lines
    for each in lines:
        each["invoice"] = invoice_id
    invoice = build_invoice(store, sub, reason, now, invoice_id, lines, period=(
        (usage_from, start) if usage_from is not None else (now, now)))
    customer = store.stored("customer", sub["customer"])
    sequence = customer["next_invoice_sequence"]
    customer["next_invoice_sequence"] = sequence + 1
    invoice["number"] = f"{customer['invoice_prefix']}-{sequence:04d}"
    store.add(invoice)
    sub["_invoices"].append(invoice_id)
    store.emit("invoice.created", store.render(invoice))
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = now
    store.emit("invoice.finalized", store.render(invoice))
    sub["latest_invoice"] = invoice_id
    return invoice


def build_invoice(store: Store, sub: dict, reason: str, now: int, invoice_id: str, lines: list[dict], *,
                  period: tuple[int, int]) -> dict:
    """A draft invoice of the subscription with these lines (nothing stored, no number yet)."""
    customer = store.stored("customer", sub["customer"])
    total = sum(each["amount"] for each in lines)
    invoice = template("invoice")
    invoice.update({
        "id": invoice_id, "account_country": "US", "account_name": "billing-sync emulator", "account_tax_ids": None,
        "amount_due": total, "amount_paid": 0, "amount_remaining": total, "amount_shipping": 0, "application": None,
        "attempt_count": 0, "attempted": False, "auto_advance": True,
        "automatic_tax": {"enabled": False, "liability": None, "status": None, "disabled_reason": None,
                          "provider": None},
        "billing_reason": reason, "collection_method": "charge_automatically", "created": now,
        "currency": sub["currency"], "custom_fields": None, "customer": customer["id"],
        "customer_address": customer["address"], "customer_email": customer["email"],
        "customer_name": customer["name"], "customer_phone": customer["phone"],
        "customer_shipping": customer["shipping"], "customer_tax_exempt": customer["tax_exempt"],
        "customer_tax_ids": [], "default_payment_method": None, "default_source": None, "default_tax_rates": [],
        "description": None, "discounts": [], "due_date": None, "effective_at": now, "ending_balance": 0,
        "footer": None, "from_invoice": None, "hosted_invoice_url": f"https://invoice.stripe.com/i/emulator/{invoice_id}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/emulator/{invoice_id}/pdf", "issuer": {"type": "self"},
        "last_finalization_error": None, "latest_revision": None,
        "lines": {"object": "list", "data": lines, "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
        "livemode": False, "metadata": {}, "next_payment_attempt": None,
        "number": None, "on_behalf_of": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": period[1], "period_start": period[0],
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0, "receipt_number": None,
        "rendering": None, "shipping_cost": None, "shipping_details": None, "starting_balance": 0,
        "statement_descriptor": None, "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None, "paid_at": None,
                               "voided_at": None},
        "subscription": sub["id"], "subtotal": total, "subtotal_excluding_tax": total,
        "test_clock": customer["test_clock"], "total": total, "total_discount_amounts": [],
        "total_excluding_tax": total,
        "webhooks_delivered_at": None, "automatically_finalizes_at": None, "total_pretax_credit_amounts": [],
        "total_taxes": [], "amount_overpaid": 0, "customer_account": None,
        "parent": {"quote_details": None, "type": "subscription_details",
                   "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]}},
    })
    return invoice


def open_invoices(store: Store, sub: dict) -> list[dict]:
    invoices = (store.get("invoice", invoice_id) for invoice_id in sub["_invoices"])
    return [i for i in invoices if i is not None and i["status"] == "open"]
