"""The self-serve intents (selfserve_port.py) as Stripe requests, and Stripe's objects as their
views. Mixed, like requests.StripeIntents, into the SDK adapter and the unit tests' fake, which both
have the wire methods below; the contract suite checks that they answer alike."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ..errors import NotFound
from .billing_views import invoice_view
from .port import ENDED_STATUSES, ItemView, SubscriptionView
from .requests import change_items
from .selfserve_port import (
    CheckoutSessionView,
    InvoicePreviewView,
    InvoiceView,
    PaymentMethodView,
    PortalSessionView,
    SetupIntentView,
)
from .views import _id_of


class SelfServeWire(Protocol):
    def create_checkout_session(self, params: dict, *, idempotency_key: str) -> dict: ...
    def create_portal_session(self, params: dict, *, idempotency_key: str) -> dict: ...
    def create_setup_intent(self, params: dict, *, idempotency_key: str) -> dict: ...
    def create_invoice_preview(self, params: dict) -> dict: ...
    def list_invoices_page(self, params: dict) -> dict: ...
    def retrieve_payment_method(self, payment_method_id: str) -> dict | None: ...
    def retrieve_customer(self, customer_id: str) -> dict | None: ...
    def list_subscriptions(self, *, customer: str | None = None, status: str = "all") -> Iterable[dict]: ...
    def update_customer(self, customer_id: str, params: dict, *, idempotency_key: str) -> dict: ...
    def update_subscription(self, subscription_id: str, params: dict, *, idempotency_key: str) -> dict: ...


def preview_view(preview: dict, proration_date: int | None) -> InvoicePreviewView:
    lines = (preview.get("lines") or {}).get("data") or []
    prorations = sum(line.get("amount") or 0 for line in lines
                     if (((line.get("parent") or {}).get("subscription_item_details") or {}).get("proration")))
    return InvoicePreviewView(amount_due=preview.get("amount_due") or 0, currency=preview.get("currency") or "",
                              proration_amount=prorations, charged_at=preview.get("next_payment_attempt"),
                              proration_date=proration_date)


def payment_method_view(pm: dict) -> PaymentMethodView:
    card = pm.get("card") or {}
    return PaymentMethodView(id=pm["id"], type=pm.get("type") or "card", brand=card.get("brand"),
                             last4=card.get("last4"), exp_month=card.get("exp_month"), exp_year=card.get("exp_year"))


class SelfServeIntents:
    """`SelfServeGateway` on top of the wire methods of the class it is mixed into."""

    @property
    def _self_serve_wire(self) -> SelfServeWire:
        return self  # type: ignore[return-value]  # the class this is mixed into has them

    def new_checkout_session(self, customer_id: str, *, tenant_id: str, price_id: str, quantity: int,
                                trial_days: int | None, success_url: str, cancel_url: str,
                                idempotency_key: str) -> CheckoutSessionView:
        subscription_data: dict = {"metadata": {"tenant_id": tenant_id}}
        if trial_days:
            subscription_data["trial_period_days"] = trial_days
        params = {"mode": "subscription", "customer": customer_id, "client_reference_id": tenant_id,
                  "metadata": {"tenant_id": tenant_id}, "line_items": [{"price": price_id, "quantity": quantity}],
                  "subscription_data": subscription_data, "success_url": success_url, "cancel_url": cancel_url}
        session = self._self_serve_wire.create_checkout_session(params, idempotency_key=idempotency_key)
        return CheckoutSessionView(id=session["id"], url=session.get("url"), expires_at=session["expires_at"],
                                   status=session["status"], customer=_id_of(session.get("customer")),
                                   subscription=_id_of(session.get("subscription")))

    def new_portal_session(self, customer_id: str, *, return_url: str, flow: str | None,
                              subscription_id: str | None, idempotency_key: str) -> PortalSessionView:
        params: dict = {"customer": customer_id, "return_url": return_url}
        if flow is not None:
            flow_data: dict = {"type": flow, "after_completion": {"type": "redirect",
                                                                  "redirect": {"return_url": return_url}}}
            if flow != "payment_method_update":
                flow_data[flow] = {"subscription": subscription_id}
            params["flow_data"] = flow_data
        session = self._self_serve_wire.create_portal_session(params, idempotency_key=idempotency_key)
        return PortalSessionView(id=session["id"], url=session["url"])

    def new_setup_intent(self, customer_id: str, *, tenant_id: str, idempotency_key: str) -> SetupIntentView:
        params = {"customer": customer_id, "usage": "off_session", "payment_method_types": ["card"],
                  "metadata": {"tenant_id": tenant_id}}
        intent = self._self_serve_wire.create_setup_intent(params, idempotency_key=idempotency_key)
        return SetupIntentView(id=intent["id"], client_secret=intent["client_secret"], status=intent["status"])

    def preview_change(self, sub: SubscriptionView, item: ItemView, *, price_id: str | None, quantity: int | None,
                       proration_date: int) -> InvoicePreviewView:
        details = {"items": change_items(item, price_id, quantity), "proration_behavior": "create_prorations",
                   "proration_date": proration_date}
        preview = self._self_serve_wire.create_invoice_preview(
            {"customer": sub.customer, "subscription": sub.id, "subscription_details": details})
        return preview_view(preview, proration_date)

    def upcoming_invoice(self, sub: SubscriptionView) -> InvoicePreviewView | None:
        try:
            preview = self._self_serve_wire.create_invoice_preview({"customer": sub.customer, "subscription": sub.id})
        except NotFound:
            return None
        return preview_view(preview, None)

    def invoices(self, customer_id: str, *, limit: int, starting_after: str | None) -> tuple[list[InvoiceView], bool]:
        params: dict = {"customer": customer_id, "limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        page = self._self_serve_wire.list_invoices_page(params)
        return [invoice_view(i) for i in page.get("data", [])], bool(page.get("has_more"))

    def default_payment_method(self, customer_id: str) -> PaymentMethodView | None:
        wire = self._self_serve_wire
        live = sorted((s for s in wire.list_subscriptions(customer=customer_id, status="all")
                       if s["status"] not in ENDED_STATUSES), key=lambda s: s.get("created") or 0, reverse=True)
        pm_id = next((_id_of(s.get("default_payment_method")) for s in live if s.get("default_payment_method")), None)
        if pm_id is None:
            customer = wire.retrieve_customer(customer_id) or {}
            pm_id = _id_of((customer.get("invoice_settings") or {}).get("default_payment_method"))
        pm = wire.retrieve_payment_method(pm_id) if pm_id else None
        return payment_method_view(pm) if pm else None

    def set_default_payment_method(self, customer_id: str, payment_method_id: str, *, idempotency_key: str) -> None:
        wire = self._self_serve_wire
        wire.update_customer(customer_id, {"invoice_settings": {"default_payment_method": payment_method_id}},
                             idempotency_key=idempotency_key)
        for sub in wire.list_subscriptions(customer=customer_id, status="all"):
            own = _id_of(sub.get("default_payment_method"))
            if sub["status"] not in ENDED_STATUSES and own and own != payment_method_id:
                wire.update_subscription(sub["id"], {"default_payment_method": payment_method_id},
                                         idempotency_key=f"{idempotency_key}:{sub['id']}")
