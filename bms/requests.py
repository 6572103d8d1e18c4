"""The `BillingGateway` intents as Stripe requests: every wire parameter the commands send is built
here (Stripe's objects become the port's typed views in bms/views.py).

`StripeIntents` is a mixin over the wire-level methods of a Stripe client (`create_subscription(
params, idempotency_key=…)`, `list_subscriptions(customer=…)`, …): `StripeGateway` (the SDK) and the
unit tests' fake Stripe (tests/fakes.py) both have them, so both speak the same requests — and the
contract suite (tests/emulator/test_billing_gateway_contract.py) checks that they answer alike.

The requests are byte-for-byte what the command handlers sent before this module existed: a retried
command in flight across a deploy must repeat its request under its idempotency key.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from ..errors import PermanentError
from .port import CustomerView, ItemView, MeterSummaryView, PriceView, ProductView, SubscriptionView
from .views import customer_view, price_view, product_view, subscription_view


def request_key(idempotency_key: str, params: dict[str, Any]) -> str:
    """The key of a write whose parameters come from a decision: the caller's key plus a digest of
    the request, so that a new decision is a new request rather than the old key with new params."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{idempotency_key}:{digest}"


StripeObject = dict[str, Any]  # a Stripe object as the API answers it (JSON)


class DuplicateMeterEvent(PermanentError):
    """`create_meter_event`: Stripe already has an event with this identifier (its 400 "An event
    already exists with identifier …", `Stripe-Should-Retry: false`). The wire raises it (the
    SDK's transport and the fake alike); `record_meter_event` takes it as delivered."""

    reason = "invalid"


class StripeWire(Protocol):
    """The wire-level methods the intents are sent with (StripeGateway's, and the fake's)."""

    def retrieve_account(self) -> StripeObject: ...
    def retrieve_customer(self, customer_id: str) -> StripeObject | None: ...
    def find_customer_for_tenant(self, tenant_id: str) -> StripeObject | None: ...
    def create_customer(self, params: dict[str, Any], *, idempotency_key: str) -> StripeObject: ...
    def update_customer(self, customer_id: str, params: dict[str, Any], *, idempotency_key: str) -> StripeObject: ...
    def create_test_clock(self, frozen_time: int, name: str, *, idempotency_key: str) -> StripeObject: ...
    def retrieve_subscription(self, subscription_id: str) -> StripeObject | None: ...
    def list_subscriptions(self, *, customer: str | None = None, status: str = "all") -> Iterable[StripeObject]: ...
    def create_subscription(self, params: dict[str, Any], *, idempotency_key: str) -> StripeObject: ...
    def update_subscription(self, subscription_id: str, params: dict[str, Any], *,
                            idempotency_key: str) -> StripeObject: ...
    def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> StripeObject: ...
    def find_price_by_lookup_key(self, lookup_key: str) -> StripeObject | None: ...
    def create_meter_event(self, params: dict[str, Any], *, idempotency_key: str) -> StripeObject: ...
    def list_meter_event_summaries(self, meter_id: str, params: dict[str, Any]) -> Iterable[StripeObject]: ...
    def list_meters(self) -> Iterable[StripeObject]: ...
    def list_customers(self) -> Iterable[StripeObject]: ...
    def retrieve_product(self, product_id: str) -> StripeObject | None: ...
    def list_products(self) -> Iterable[StripeObject]: ...
    def list_product_feature_keys(self, product_id: str) -> list[str]: ...
    def retrieve_price(self, price_id: str) -> StripeObject | None: ...
    def list_active_entitlement_keys(self, customer_id: str) -> list[str]: ...
    def list_events(self, *, created_gte: int | None = None,
                    types: list[str] | None = None) -> Iterable[StripeObject]: ...
    def retrieve_event(self, event_id: str) -> StripeObject | None: ...


class StripeIntents:
    """`BillingGateway` on top of the wire methods of the class it is mixed into."""

    @property
    def _wire(self) -> StripeWire:
        return self  # type: ignore[return-value]  # the class this is mixed into has them

    # -- the account ------------------------------------------------------------------------------

    def stripe_account_id(self) -> str:
        return str(self._wire.retrieve_account()["id"])

    # -- customers ----------------------------------------------------------------------------

    def customer(self, customer_id: str) -> CustomerView | None:
        customer = self._wire.retrieve_customer(customer_id)
        return customer_view(customer) if customer is not None else None

    def find_customer_by_tenant(self, tenant_id: str) -> CustomerView | None:
        customer = self._wire.find_customer_for_tenant(tenant_id)
        return customer_view(customer) if customer is not None else None

    def new_customer_request(self, *, tenant_id: str, name: str | None, email: str | None,
                             payment_method: str | None, test_clock: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"name": name, "email": email, "metadata": {"tenant_id": tenant_id}}
        if payment_method:
            params["payment_method"] = payment_method
            params["invoice_settings"] = {"default_payment_method": payment_method}
        if test_clock:
            params["test_clock"] = test_clock
        return params

    def create_customer_from(self, request: dict[str, Any], *, idempotency_key: str) -> CustomerView:
        return customer_view(self._wire.create_customer(request, idempotency_key=idempotency_key))

    def update_customer_details(self, customer_id: str, *, name: str | None = None, email: str | None = None,
                                address: dict[str, Any] | None = None, idempotency_key: str) -> None:
        params: dict[str, Any] = {}
        if name is not None:
            params["name"] = name
        if email is not None:
            params["email"] = email
        if address is not None:
            params["address"] = address
        if params:
            self._wire.update_customer(customer_id, params, idempotency_key=idempotency_key)

    def all_customers(self) -> Iterator[CustomerView]:
        return (customer_view(c) for c in self._wire.list_customers())

    def start_test_clock(self, frozen_time: int, name: str, *, idempotency_key: str) -> str:
        return str(self._wire.create_test_clock(frozen_time, name, idempotency_key=idempotency_key)["id"])

    # -- subscriptions ------------------------------------------------------------------------

    def subscription(self, subscription_id: str) -> SubscriptionView | None:
        sub = self._wire.retrieve_subscription(subscription_id)
        return subscription_view(sub) if sub is not None else None

    def subscriptions_newest_first(self, customer_id: str) -> list[SubscriptionView]:
        subs = self._wire.list_subscriptions(customer=customer_id, status="all")
        return [subscription_view(s) for s in sorted(subs, key=lambda s: s.get("created") or 0, reverse=True)]

    def live_subscriptions(self, customer_id: str) -> list[SubscriptionView]:
        return [s for s in self.subscriptions_newest_first(customer_id) if not s.ended]

    def all_subscriptions(self) -> Iterator[SubscriptionView]:
        return (subscription_view(s) for s in self._wire.list_subscriptions(status="all"))

    def start_subscription(self, customer_id: str, *, tenant_id: str, price_id: str, quantity: int,
                           trial_days: int | None, fail_if_payment_fails: bool,
                           idempotency_key: str, confirm_in_app: bool = False) -> SubscriptionView:
        params: dict[str, Any] = {
            "customer": customer_id,
            "items": [{"price": price_id, "quantity": quantity}],
            "metadata": {"tenant_id": tenant_id},
        }
        if trial_days:
            params["trial_period_days"] = trial_days
        if confirm_in_app:  # Stripe's SCA integration: confirmed by Stripe.js, the card saved for renewals
            params["payment_behavior"] = "default_incomplete"
            params["payment_settings"] = {"save_default_payment_method": "on_subscription"}
        elif fail_if_payment_fails:
            params["payment_behavior"] = "error_if_incomplete"
        return subscription_view(self._wire.create_subscription(params, idempotency_key=idempotency_key))

    def change_plan(self, sub: SubscriptionView, item: ItemView, *, price_id: str | None, quantity: int | None,
                    unschedule_cancel: bool, idempotency_key: str,
                    proration_date: int | None = None) -> SubscriptionView:
        params: dict[str, Any] = {}
        items = change_items(item, price_id, quantity)
        if items:
            params["items"] = items
            params["proration_behavior"] = "create_prorations"
            if proration_date is not None:
                params["proration_date"] = proration_date
        if unschedule_cancel:
            params.update(_unschedule_cancel_params(sub))
        return self._update(sub, params, request_key(idempotency_key, params))

    def schedule_cancel(self, sub: SubscriptionView, *, idempotency_key: str) -> SubscriptionView:
        return self._update(sub, {"cancel_at_period_end": True}, idempotency_key)

    def unschedule_cancel(self, sub: SubscriptionView, *, idempotency_key: str) -> SubscriptionView:
        return self._update(sub, _unschedule_cancel_params(sub), idempotency_key)

    def cancel_now(self, sub: SubscriptionView, *, idempotency_key: str) -> SubscriptionView:
        return subscription_view(self._wire.cancel_subscription(sub.id, idempotency_key=idempotency_key))

    def _update(self, sub: SubscriptionView, params: dict[str, Any], idempotency_key: str) -> SubscriptionView:
        updated = self._wire.update_subscription(sub.id, params, idempotency_key=idempotency_key)
        return subscription_view(updated)

    # -- catalog, entitlements and usage ------------------------------------------------------

    def product(self, product_id: str) -> ProductView | None:
        product = self._wire.retrieve_product(product_id)
        return product_view(product) if product is not None else None

    def all_products(self) -> Iterator[ProductView]:
        return (product_view(p) for p in self._wire.list_products())

    def product_feature_keys(self, product_id: str) -> list[str]:
        return self._wire.list_product_feature_keys(product_id)

    def price(self, price_id: str) -> PriceView | None:
        price = self._wire.retrieve_price(price_id)
        return price_view(price) if price is not None else None

    def active_entitlement_keys(self, customer_id: str) -> list[str]:
        return sorted(self._wire.list_active_entitlement_keys(customer_id))

    def price_id_for_lookup_key(self, lookup_key: str) -> str | None:
        price = self._wire.find_price_by_lookup_key(lookup_key)
        return price["id"] if price is not None else None

    def record_meter_event(self, *, event_name: str, customer_id: str, value: int | str, identifier: str,
                           timestamp: int, idempotency_key: str) -> bool:
        try:
            self._wire.create_meter_event({
                "event_name": event_name,
                "payload": {"stripe_customer_id": customer_id, "value": str(value)},
                "identifier": identifier,
                "timestamp": timestamp,
            }, idempotency_key=idempotency_key)
        except DuplicateMeterEvent:  # Stripe holds the event already: what was to be delivered is
            return False
        return True

    def meter_id(self, event_name: str) -> str | None:
        return next((m["id"] for m in self._wire.list_meters()
                     if m.get("event_name") == event_name and m.get("status", "active") == "active"), None)

    def meter_event_summaries(self, meter_id: str, customer_id: str, start: int, end: int, *,
                              window: str | None = None) -> list[MeterSummaryView]:
        params: dict[str, Any] = {"customer": customer_id, "start_time": start, "end_time": end}
        if window is not None:
            params["value_grouping_window"] = window
        summaries = self._wire.list_meter_event_summaries(meter_id, params)   # Stripe: newest first
        return sorted((MeterSummaryView(start=s["start_time"], end=s["end_time"], value=float(s["aggregated_value"]))
                       for s in summaries), key=lambda view: view.start)

    # -- events -------------------------------------------------------------------------------

    def events_since(self, created: int) -> Iterator[dict[str, Any]]:
        return iter(self._wire.list_events(created_gte=created))

    def event(self, event_id: str) -> dict[str, Any] | None:
        return self._wire.retrieve_event(event_id)


def change_items(item: ItemView, price_id: str | None, quantity: int | None) -> list[dict[str, Any]]:
    """The `items` of a plan change: what change_plan sends, and what a preview of it asks about."""
    change: dict[str, Any] = {}
    if price_id is not None:
        change["price"] = price_id
    if quantity is not None:
        change["quantity"] = quantity
    return [{"id": item.id, **change}] if change else []


def _unschedule_cancel_params(sub: SubscriptionView) -> dict[str, Any]:
    if sub.cancel_at_period_end:
        return {"cancel_at_period_end": False}
    if sub.cancel_at:
        return {"cancel_at": ""}  # Stripe unsets a field given the empty string
    return {}
