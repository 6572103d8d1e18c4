"""`BillingPageGateway` (bms/billing_port.py) on the wire methods of the class it is mixed into:
`StripeGateway` (the SDK) and the unit tests' fake, like `StripeIntents` (bms/requests.py)."""
from __future__ import annotations

from typing import Any, Protocol

from .billing_port import InvoiceView, PendingPaymentView, SetupIntentStateView
from .billing_views import checkout_session_view, invoice_view, pending_payment_view, setup_intent_state_view
from .port import PriceView
from .selfserve_port import CheckoutSessionView, PaymentMethodView
from .selfserve_requests import payment_method_view
from .views import price_view


class BillingPageWire(Protocol):
    def retrieve_payment_method(self, payment_method_id: str) -> dict[str, Any] | None: ...
    def retrieve_invoice(self, invoice_id: str) -> dict[str, Any] | None: ...
    def list_invoices(self, customer_id: str) -> list[dict[str, Any]]: ...
    def retrieve_setup_intent(self, setup_intent_id: str) -> dict[str, Any] | None: ...
    def retrieve_checkout_session(self, session_id: str) -> dict[str, Any] | None: ...
    def find_price_by_lookup_key(self, lookup_key: str) -> dict[str, Any] | None: ...
    def retrieve_subscription_first_payment(self, subscription_id: str) -> dict[str, Any] | None: ...


class BillingPageIntents:
    @property
    def _billing_wire(self) -> BillingPageWire:
        return self  # type: ignore[return-value]  # the class this is mixed into has them

    def payment_method(self, payment_method_id: str) -> PaymentMethodView | None:
        pm = self._billing_wire.retrieve_payment_method(payment_method_id)
        return payment_method_view(pm) if pm is not None else None

    def invoice(self, invoice_id: str) -> InvoiceView | None:
        invoice = self._billing_wire.retrieve_invoice(invoice_id)
        return invoice_view(invoice) if invoice is not None else None

    def invoices_of(self, customer_id: str) -> list[InvoiceView]:
        return [invoice_view(i) for i in self._billing_wire.list_invoices(customer_id)]

    def setup_intent_state(self, setup_intent_id: str) -> SetupIntentStateView | None:
        intent = self._billing_wire.retrieve_setup_intent(setup_intent_id)
        return setup_intent_state_view(intent) if intent is not None else None

    def checkout_session(self, session_id: str) -> CheckoutSessionView | None:
        session = self._billing_wire.retrieve_checkout_session(session_id)
        return checkout_session_view(session) if session is not None else None

    def price_for_lookup_key(self, lookup_key: str) -> PriceView | None:
        price = self._billing_wire.find_price_by_lookup_key(lookup_key)
        return price_view(price) if price is not None else None

    def pending_payment(self, subscription_id: str) -> PendingPaymentView | None:
        sub = self._billing_wire.retrieve_subscription_first_payment(subscription_id)
        return pending_payment_view(sub) if sub is not None else None
