"""The one place that talks to Stripe: a thin wrapper over the official SDK's StripeClient.

The wire methods below take and give Stripe's own dicts; the command handlers use the intent-level
`BillingGateway` methods mixed in from requests.py (port.py says what they mean). Callers only
ever see our own errors (errors.py), so they can be tested against an in-memory fake Stripe with
the same wire methods (tests/fakes.py). Every write takes an idempotency key;
every call first takes a token from the fleet-wide rate limiter.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterator, Protocol

import stripe

from ..errors import NotFound, PaymentFailed, PermanentError, TransientError
from .billing_intents import BillingPageIntents
from .requests import DuplicateMeterEvent, StripeIntents
from .selfserve_requests import SelfServeIntents

__all__ = ["NotFound", "StripeGateway", "RateLimiter", "NoRateLimit"]

# How Stripe words its refusal of a meter event whose identifier it already has (a 400
# invalid_request_error without a code, `Stripe-Should-Retry: false`).
DUPLICATE_METER_EVENT = "An event already exists with identifier"


class RateLimiter(Protocol):
    def acquire(self) -> None:
        """Block until one more Stripe request may be made."""


class NoRateLimit:
    def acquire(self) -> None:
        return None


def _plain(obj: Any) -> Any:
    """StripeObject → plain JSON-safe dicts: the SDK turns `*_decimal` strings into Decimal, which
    neither our JSON columns nor the broker's JSON encoder take, so they go back to strings."""
    if isinstance(obj, stripe.StripeObject):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        return {key: _plain(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_plain(value) for value in obj]
    if isinstance(obj, Decimal):
        return str(obj)
    return obj


class StripeGateway(StripeIntents, SelfServeIntents, BillingPageIntents):
    """The SDK transport (wire methods below) with the `BillingGateway`, `SelfServeGateway` and
    `BillingPageGateway` intents mixed in."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        rate_limiter: RateLimiter | None = None,
        meter_rate_limiter: RateLimiter | None = None,
        max_network_retries: int = 0,
    ):
        base = {"api": api_base} if api_base else None
        # Retries belong to the worker (capped backoff, dead-lettering), not to the SDK.
        self.client = stripe.StripeClient(api_key, base_addresses=base, max_network_retries=max_network_retries)
        self.limiter = rate_limiter or NoRateLimit()
        # Meter events draw from their own share of the Stripe budget, so metering's backlog
        # never delays the sync (and the sync's bursts never stall metering).
        self.meter_limiter = meter_rate_limiter or self.limiter

    # -- plumbing -----------------------------------------------------------------------------

    def _call(self, fn, params: dict | None = None, *, idempotency_key: str | None = None,
              limiter: RateLimiter | None = None, **kw) -> Any:
        (limiter or self.limiter).acquire()
        options = {"idempotency_key": idempotency_key[:255]} if idempotency_key else {}
        try:
            return _plain(fn(params=params or {}, options=options, **kw))
        except stripe.CardError as exc:
            raise PaymentFailed(f"{exc.user_message or exc} ({exc.code or 'card_declined'})",
                                reason=_card_reason(exc)) from exc
        except (stripe.RateLimitError, stripe.APIConnectionError) as exc:
            raise TransientError(f"stripe: {type(exc).__name__}") from exc
        except stripe.IdempotencyError as exc:
            raise PermanentError(f"stripe idempotency conflict: {exc.user_message}", reason="invalid") from exc
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 400 and str(exc.user_message or "").startswith(DUPLICATE_METER_EVENT):
                raise DuplicateMeterEvent(str(exc.user_message)) from exc
            if exc.http_status == 404 or exc.code == "resource_missing":
                raise NotFound(str(exc.user_message or exc)) from exc
            raise PermanentError(str(exc.user_message or exc), reason="invalid") from exc
        except stripe.StripeError as exc:
            if exc.http_status == 402:
                raise PaymentFailed(str(exc.user_message or exc), reason="payment_required") from exc
            if exc.http_status is None or exc.http_status >= 500 or exc.http_status in (409, 429):
                raise TransientError(f"stripe {exc.http_status}: {type(exc).__name__}") from exc
            raise PermanentError(str(exc.user_message or exc), reason="invalid") from exc

    def _retrieve(self, fn, object_id: str, params: dict | None = None) -> dict | None:
        try:
            obj = self._call(lambda **kw: fn(object_id, **kw), params)
        except NotFound:
            return None
        return None if obj.get("deleted") else obj

    def _all_pages(self, fn, params: dict) -> Iterator[dict]:
        """Every page, 100 at a time: lists cut at the first page are a classic sync bug."""
        params = {**params, "limit": 100}
        while True:
            page = self._call(fn, params)
            data = page.get("data", [])
            yield from data
            if not page.get("has_more") or not data:
                return
            params["starting_after"] = data[-1]["id"]

    # -- customers ----------------------------------------------------------------------------

    def retrieve_customer(self, customer_id: str) -> dict | None:
        return self._retrieve(self.client.v1.customers.retrieve, customer_id)

    def find_customer_for_tenant(self, tenant_id: str) -> dict | None:
        query = f"metadata['tenant_id']:{_search_string(tenant_id)}"
        page = self._call(self.client.v1.customers.search, {"query": query})
        live = [c for c in page.get("data", []) if not c.get("deleted")]
        return min(live, key=lambda c: c["created"]) if live else None

    def create_customer(self, params: dict, *, idempotency_key: str) -> dict:
        return self._call(self.client.v1.customers.create, params, idempotency_key=idempotency_key)

    def update_customer(self, customer_id: str, params: dict, *, idempotency_key: str) -> dict:
        return self._call(lambda **kw: self.client.v1.customers.update(customer_id, **kw), params,
                          idempotency_key=idempotency_key)

    def list_customers(self) -> Iterator[dict]:
        return self._all_pages(self.client.v1.customers.list, {})

    def retrieve_account(self) -> dict:
        """The Stripe account this key belongs to (`GET /v1/account`), for the account pin."""
        return self._call(self.client.v1.accounts.retrieve_current)

    def ping(self) -> None:
        """The cheapest authenticated call (list one customer), for `billing-sync status`."""
        self._call(self.client.v1.customers.list, {"limit": 1})

    # -- subscriptions ------------------------------------------------------------------------

    def retrieve_subscription(self, subscription_id: str) -> dict | None:
        return self._retrieve(self.client.v1.subscriptions.retrieve, subscription_id)

    def list_subscriptions(self, *, customer: str | None = None, status: str = "all") -> Iterator[dict]:
        params: dict = {"status": status}
        if customer:
            params["customer"] = customer
        return self._all_pages(self.client.v1.subscriptions.list, params)

    def create_subscription(self, params: dict, *, idempotency_key: str) -> dict:
        return self._call(self.client.v1.subscriptions.create, params, idempotency_key=idempotency_key)

    def update_subscription(self, subscription_id: str, params: dict, *, idempotency_key: str) -> dict:
        return self._call(lambda **kw: self.client.v1.subscriptions.update(subscription_id, **kw), params,
                          idempotency_key=idempotency_key)

    def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> dict:
        return self._call(lambda **kw: self.client.v1.subscriptions.cancel(subscription_id, **kw), {},
                          idempotency_key=idempotency_key)

    # -- self-serve: sessions, previews, invoices, payment methods ---------------------------

    def create_checkout_session(self, params: dict, *, idempotency_key: str) -> dict:
        return self._call(self.client.v1.checkout.sessions.create, params, idempotency_key=idempotency_key)

    def create_portal_session(self, params: dict, *, idempotency_key: str) -> dict:
        return self._call(self.client.v1.billing_portal.sessions.create, params, idempotency_key=idempotency_key)

    def create_setup_intent(self, params: dict, *, idempotency_key: str) -> dict:
        return self._call(self.client.v1.setup_intents.create, params, idempotency_key=idempotency_key)

    def create_invoice_preview(self, params: dict) -> dict:
        """A preview is a read: no idempotency key (Stripe answers 404 `invoice_upcoming_none`
        when nothing is coming, which is NotFound here)."""
        return self._call(self.client.v1.invoices.create_preview, params)

    def list_invoices_page(self, params: dict) -> dict:
        return self._call(self.client.v1.invoices.list, params)

    # -- the billing page's objects (issue 9) --------------------------------------------------

    def retrieve_payment_method(self, payment_method_id: str) -> dict | None:
        return self._retrieve(self.client.v1.payment_methods.retrieve, payment_method_id)

    def retrieve_invoice(self, invoice_id: str) -> dict | None:
        return self._retrieve(self.client.v1.invoices.retrieve, invoice_id)

    def list_invoices(self, customer_id: str) -> list[dict]:
        return list(self._all_pages(self.client.v1.invoices.list, {"customer": customer_id}))

    def retrieve_setup_intent(self, setup_intent_id: str) -> dict | None:
        return self._retrieve(self.client.v1.setup_intents.retrieve, setup_intent_id)

    def retrieve_subscription_first_payment(self, subscription_id: str) -> dict | None:
        return self._retrieve(self.client.v1.subscriptions.retrieve, subscription_id,
                              {"expand": ["latest_invoice.confirmation_secret"]})

    def retrieve_checkout_session(self, session_id: str) -> dict | None:
        return self._retrieve(self.client.v1.checkout.sessions.retrieve, session_id)

    # -- catalog ------------------------------------------------------------------------------

    def find_price_by_lookup_key(self, lookup_key: str) -> dict | None:
        page = self._call(self.client.v1.prices.list, {"lookup_keys": [lookup_key], "active": True, "limit": 1})
        return page["data"][0] if page.get("data") else None

    def retrieve_price(self, price_id: str) -> dict | None:
        return self._retrieve(self.client.v1.prices.retrieve, price_id)

    def retrieve_product(self, product_id: str) -> dict | None:
        return self._retrieve(self.client.v1.products.retrieve, product_id)

    def list_products(self) -> Iterator[dict]:
        return self._all_pages(self.client.v1.products.list, {})

    def list_product_feature_keys(self, product_id: str) -> list[str]:
        fn = lambda **kw: self.client.v1.products.features.list(product_id, **kw)  # noqa: E731
        return [pf["entitlement_feature"]["lookup_key"] for pf in self._all_pages(fn, {})]

    def create_product(self, params: dict, *, idempotency_key: str) -> dict:
        return self._call(self.client.v1.products.create, params, idempotency_key=idempotency_key)

    def create_price(self, params: dict, *, idempotency_key: str) -> dict:
        return self._call(self.client.v1.prices.create, params, idempotency_key=idempotency_key)

    # -- entitlements and usage ---------------------------------------------------------------

    def list_active_entitlement_keys(self, customer_id: str) -> list[str]:
        items = self._all_pages(self.client.v1.entitlements.active_entitlements.list, {"customer": customer_id})
        return sorted(item["lookup_key"] for item in items)

    def create_meter_event(self, params: dict, *, idempotency_key: str) -> dict:
        return self._call(self.client.v1.billing.meter_events.create, params, idempotency_key=idempotency_key,
                          limiter=self.meter_limiter)

    def list_meter_event_summaries(self, meter_id: str, params: dict) -> Iterator[dict]:
        summaries = self.client.v1.billing.meters.event_summaries
        return self._all_pages(lambda **kw: summaries.list(meter_id, **kw), params)

    def list_meters(self) -> Iterator[dict]:
        return self._all_pages(self.client.v1.billing.meters.list, {})

    def create_meter(self, params: dict, *, idempotency_key: str) -> dict:
        return self._call(self.client.v1.billing.meters.create, params, idempotency_key=idempotency_key)

    # -- events and test clocks ---------------------------------------------------------------

    def list_events(self, *, created_gte: int | None = None, types: list[str] | None = None) -> Iterator[dict]:
        params: dict = {}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        if types:
            params["types"] = types
        return self._all_pages(self.client.v1.events.list, params)

    def retrieve_event(self, event_id: str) -> dict | None:
        return self._retrieve(self.client.v1.events.retrieve, event_id)

    def create_test_clock(self, frozen_time: int, name: str, *, idempotency_key: str) -> dict:
        return self._call(self.client.v1.test_helpers.test_clocks.create,
                          {"frozen_time": frozen_time, "name": name[:300]}, idempotency_key=idempotency_key)

    def advance_test_clock(self, clock_id: str, frozen_time: int) -> dict:
        return self._call(lambda **kw: self.client.v1.test_helpers.test_clocks.advance(clock_id, **kw),
                          {"frozen_time": frozen_time})


def _search_string(value: str) -> str:
    """A quoted string of Stripe's search query language: quotes and backslashes escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _card_reason(exc: stripe.CardError) -> str:
    """Every card error is `card_declined` to the product (the contract's reason); Stripe's own
    code (expired_card, incorrect_cvc, …) is in the message."""
    return "card_declined"
