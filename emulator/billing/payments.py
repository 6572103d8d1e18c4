"""Payment attempts on invoices: which payment method a subscription charges, one charge and
its outcome (paid, failed, or waiting for 3-D Secure), a first payment left to the customer to
confirm (`default_incomplete`), and the retry schedule of a failed renewal (spread over
`faults.dunning_days`)."""
from __future__ import annotations

from ..ids import new_id, random_part
from ..shapes import template
from ..store import Store
from . import DAY

RETRY_FRACTIONS = (1 / 14, 3 / 14, 7 / 14, 1.0)   # of the dunning length, after the first failure


def payment_method_for(store: Store, sub: dict) -> dict | None:
    pm_id = sub.get("default_payment_method")
    if not pm_id:
        customer = store.get("customer", sub["customer"])
        pm_id = customer["invoice_settings"]["default_payment_method"] if customer else None
    return store.get("payment_method", pm_id) if pm_id else None


def charge_succeeds(pm: dict | None) -> bool:
    """Whether a charge on this payment method goes through (its test token's behaviour)."""
    return pm is not None and pm.get("_behavior") == "ok"


def pay_invoice(store: Store, invoice: dict, now: int, pm: dict | None, *, retry: bool = False) -> bool:
    """One payment attempt; True when the invoice ends up paid. With `retry` (renewals and their
    retries, off-session) a failure schedules the next attempt before `invoice.payment_failed` is
    sent, so the event's copy says when Stripe tries again (null after the last attempt). A card
    that needs 3-D Secure leaves a PaymentIntent `requires_action` and sends
    `invoice.payment_action_required` (on-session: instead of a failure)."""
    if invoice["amount_due"] > 0:
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        if not charge_succeeds(pm):
            if retry:
                invoice.setdefault("_dunning_start", now)
                invoice.setdefault("_retries", 0)
                invoice["next_payment_attempt"] = _retry_at(store, invoice)
            needs_action = pm is not None and pm.get("_behavior") == "authenticate"
            if pm is not None and needs_action:
                _payment_intent_for(store, invoice, pm, now)
            if retry or not needs_action:
                store.emit("invoice.payment_failed", store.render(invoice))
            if needs_action:
                store.emit("invoice.payment_action_required", store.render(invoice))
            return False
    mark_paid(store, invoice, now)
    return True


def mark_paid(store: Store, invoice: dict, now: int) -> None:
    """The invoice is paid (a charge went through, or its 3-D Secure payment was confirmed)."""
    invoice.update({"status": "paid", "amount_paid": invoice["amount_due"], "amount_remaining": 0,
                    "next_payment_attempt": None, "attempted": True, "auto_advance": False})
    invoice["status_transitions"]["paid_at"] = now
    body = store.render(invoice)
    store.emit("invoice.paid", body)
    store.emit("invoice.payment_succeeded", body)


def _payment_intent_for(store: Store, invoice: dict, pm: dict, now: int) -> dict:
    """The invoice's PaymentIntent, waiting for the customer's 3-D Secure challenge."""
    intent = payment_intent_of(store, invoice, now)
    intent.update({"payment_method": pm["id"], "status": "requires_action",
                   "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}})
    store.emit("payment_intent.requires_action", store.render(intent))
    return intent


def payment_intent_of(store: Store, invoice: dict, now: int) -> dict:
    """The invoice's PaymentIntent, made when first needed (`requires_payment_method`): Stripe
    makes one when it finalizes a charge_automatically invoice; here only an invoice whose payment
    a customer confirms has one."""
    intent = store.get("payment_intent", invoice.get("_payment_intent"))
    if intent is None:
        intent = template("payment_intent")
        intent_id = new_id("pi", 24)
        intent.update({
            "id": intent_id, "amount": invoice["amount_due"], "amount_capturable": 0, "amount_details": {"tip": {}},
            "amount_received": 0, "automatic_payment_methods": None, "canceled_at": None,
            "client_secret": f"{intent_id}_secret_{random_part(24)}", "created": now,
            "currency": invoice["currency"], "customer": invoice["customer"], "description": "Subscription creation",
            "last_payment_error": None, "latest_charge": None, "livemode": False, "metadata": {},
            "payment_method_configuration_details": None, "processing": None, "shipping": None,
            "transfer_data": None, "managed_payments": None, "_invoice": invoice["id"],
        })
        intent.update({"payment_method": None, "status": "requires_payment_method", "next_action": None})
        store.add(intent)
        invoice["_payment_intent"] = intent_id
    return intent


def cancel_payment_intent(store: Store, invoice: dict, now: int) -> None:
    """A voided invoice's PaymentIntent can no longer be confirmed (`canceled`, `void_invoice`)."""
    intent = store.get("payment_intent", invoice.get("_payment_intent"))
    if intent is not None and intent["status"] not in ("succeeded", "canceled"):
        intent.update({"status": "canceled", "canceled_at": now, "cancellation_reason": "void_invoice",
                       "next_action": None})
        store.emit("payment_intent.canceled", store.render(intent))


def wait_for_confirmation(store: Store, invoice: dict, pm: dict | None, now: int) -> dict:
    """`payment_behavior=default_incomplete`: nothing is charged; the first invoice's PaymentIntent
    waits for the customer to confirm it in the browser (`requires_confirmation` with the
    subscription's payment method, else `requires_payment_method`)."""
    intent = payment_intent_of(store, invoice, now)
    if pm is not None:
        intent.update({"payment_method": pm["id"], "status": "requires_confirmation"})
    return intent


def _retry_at(store: Store, invoice: dict) -> int | None:
    """When the next retry of a failed renewal is due (None: no retry left)."""
    faults = getattr(store, "faults", None)
    from_faults = faults.dunning_days if faults is not None else 14
    index = invoice["_retries"]
    if index >= len(RETRY_FRACTIONS):
        return None
    return invoice["_dunning_start"] + max(1, int(from_faults * DAY * RETRY_FRACTIONS[index]))
