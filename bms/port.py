"""What the handlers need from Stripe, in their own words: the `BillingGateway` port and the typed
views it answers with.

Handlers decide on these views and ask for intents (start a subscription, schedule its
cancellation) or reads (a subscription, every customer); how each becomes a Stripe request
(`proration_behavior`, `cancel_at: ""`, search syntax, pagination) and how Stripe's objects become
views is the adapter's business (bms/requests.py, sent by bms/gateway.py). This module imports
nothing from Stripe, so handlers may import it; they never import the adapter.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

# A subscription in one of these states is over; anything else is the tenant's live subscription.
ENDED_STATUSES = ("canceled", "incomplete_expired")


@dataclass(frozen=True)
class CustomerView:
    id: str
    created: int
    tenant_id: str | None
    test_clock: str | None
    has_payment_method: bool  # a default payment method or source: a first payment can be charged
    name: str | None = None
    email: str | None = None
    # The billing page's (issue 9): the invoice default payment method, the address, the tax ids.
    default_payment_method: str | None = None
    address: dict[str, str | None] | None = None
    tax_ids: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ItemView:
    id: str
    price_id: str
    lookup_key: str | None
    quantity: int | None
    metered: bool  # billed by usage, so it carries no seats
    current_period_start: int | None
    current_period_end: int | None
    product_id: str | None = None  # the price's product


@dataclass(frozen=True)
class SubscriptionView:
    id: str
    customer: str
    status: str
    created: int
    cancel_at_period_end: bool
    cancel_at: int | None
    items: tuple[ItemView, ...]
    trial_end: int | None = None
    canceled_at: int | None = None
    default_payment_method: str | None = None  # its own; it beats the customer's at renewal
    # The billing period: the span of the items' periods (API 2026-10-28 keeps it on each item),
    # else the subscription's own (older API versions).
    period_start: int | None = None
    period_end: int | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED_STATUSES

    @property
    def cancel_scheduled(self) -> bool:
        """A cancellation is set for later (at the period's end or at a given time)."""
        return self.cancel_at_period_end or bool(self.cancel_at)

    def decision_basis(self) -> tuple[object, ...]:
        """What the subscription commands decide on: when it differs between the read a write was
        decided on and a fresh read, the state moved meanwhile."""
        items = tuple((i.id, i.price_id, i.quantity) for i in self.items)
        return (self.status, self.cancel_at_period_end, self.cancel_at, items)


@dataclass(frozen=True)
class ProductView:
    id: str
    name: str | None
    active: bool
    metadata: dict[str, str]  # plan, features, limit_<name>: read by the entitlement rules


@dataclass(frozen=True)
class PriceView:
    id: str
    product_id: str | None
    lookup_key: str | None
    active: bool
    unit_amount: int | None = None
    currency: str | None = None
    interval: str | None = None
    interval_count: int | None = None
    trial_days: int | None = None


@dataclass(frozen=True)
class MeterSummaryView:
    start: int  # [start, end): Unix seconds
    end: int
    value: float  # the customer's meter events in the window, aggregated by the meter's formula


class BillingGateway(Protocol):
    """Intent-level Stripe for the handlers. Every write takes an idempotency key; a
    repeated key with the same intent replays Stripe's first answer. Reads of something that does
    not exist answer None; a write to something gone raises `errors.NotFound`."""

    # -- the account
    def stripe_account_id(self) -> str:
        """The id of the Stripe account the key belongs to (for the account pin)."""

    # -- customers
    def customer(self, customer_id: str) -> CustomerView | None: ...

    def find_customer_by_tenant(self, tenant_id: str) -> CustomerView | None:
        """The oldest live customer whose metadata `tenant_id` names the tenant (Stripe's search,
        which may lag behind a creation by up to a minute)."""

    def new_customer_request(self, *, tenant_id: str, name: str | None, email: str | None,
                             payment_method: str | None, test_clock: str | None) -> dict[str, Any]:
        """The request that creates the tenant's customer, as plain JSON: a caller may store it
        and send it again with `create_customer_from` (the same key replays the first answer)."""

    def create_customer_from(self, request: dict[str, Any], *, idempotency_key: str) -> CustomerView: ...

    def update_customer_details(self, customer_id: str, *, name: str | None = None, email: str | None = None,
                                address: dict[str, Any] | None = None, idempotency_key: str) -> None:
        """Set the fields given (not None); raises NotFound when the customer is gone."""

    def all_customers(self) -> Iterator[CustomerView]:
        """Every live customer (every page), for the sweep."""

    def start_test_clock(self, frozen_time: int, name: str, *, idempotency_key: str) -> str:
        """A new test clock frozen at `frozen_time`; its id."""

    # -- subscriptions
    def subscription(self, subscription_id: str) -> SubscriptionView | None: ...

    def subscriptions_newest_first(self, customer_id: str) -> list[SubscriptionView]:
        """Every subscription of the customer, ended ones included."""

    def live_subscriptions(self, customer_id: str) -> list[SubscriptionView]:
        """The customer's subscriptions that have not ended, newest first."""

    def all_subscriptions(self) -> Iterator[SubscriptionView]:
        """Every subscription of every customer, ended ones included (every page), for the sweep."""

    def start_subscription(self, customer_id: str, *, tenant_id: str, price_id: str, quantity: int,
                           trial_days: int | None, fail_if_payment_fails: bool,
                           idempotency_key: str, confirm_in_app: bool = False) -> SubscriptionView:
        """A subscription on one price. With `fail_if_payment_fails` a declined first payment raises
        `PaymentFailed` instead of leaving an `incomplete` subscription behind. With
        `confirm_in_app` nothing is charged now: the subscription is `incomplete` until the
        customer confirms its first invoice's payment in the browser (`pending_payment`), whose
        card then becomes the subscription's default; Stripe ends it after 23 hours unpaid."""

    def change_plan(self, sub: SubscriptionView, item: ItemView, *, price_id: str | None, quantity: int | None,
                    unschedule_cancel: bool, idempotency_key: str,
                    proration_date: int | None = None) -> SubscriptionView:
        """Move `item` to another price and/or quantity (prorated from `proration_date`, a preview's,
        else now), and remove a scheduled cancellation if asked. The request depends on the
        decision, so the key sent is `idempotency_key` plus a digest of the request: deciding again
        after the state moved sends a new request."""

    def schedule_cancel(self, sub: SubscriptionView, *, idempotency_key: str) -> SubscriptionView:
        """Cancel at the end of the current period."""

    def unschedule_cancel(self, sub: SubscriptionView, *, idempotency_key: str) -> SubscriptionView:
        """Remove a scheduled cancellation (at the period's end or at a set time)."""

    def cancel_now(self, sub: SubscriptionView, *, idempotency_key: str) -> SubscriptionView:
        """End the subscription now; raises NotFound when it has already ended."""

    # -- catalog, entitlements and usage
    def product(self, product_id: str) -> ProductView | None: ...

    def all_products(self) -> Iterator[ProductView]:
        """Every product (every page), for the sweep."""

    def product_feature_keys(self, product_id: str) -> list[str]:
        """The lookup_keys of the Entitlements features attached to the product (every page)."""

    def price(self, price_id: str) -> PriceView | None: ...

    def active_entitlement_keys(self, customer_id: str) -> list[str]:
        """The lookup_keys of the customer's active entitlements, sorted (every page: a summary
        event's list may be cut at its first page)."""

    def price_id_for_lookup_key(self, lookup_key: str) -> str | None:
        """The active price with this lookup_key."""

    # -- events
    def events_since(self, created: int) -> Iterator[dict[str, Any]]:
        """Stripe's events created at or after `created` (every page), as Stripe sends them: the
        catch-up hands them to the workers the way the ingress hands a webhook."""

    def event(self, event_id: str) -> dict[str, Any] | None:
        """One Stripe event by id, as Stripe sends it (`billing-sync events replay`); None when
        Stripe has no such event (it keeps them 30 days)."""

    def record_meter_event(self, *, event_name: str, customer_id: str, value: int | str, identifier: str,
                           timestamp: int, idempotency_key: str) -> bool:
        """One meter event; Stripe keeps one event per `identifier` (for at least 24 hours).
        True when Stripe took it now, False when it already had an event with this identifier
        (Stripe's 400 "An event already exists with identifier …"): delivered, either way."""

    def meter_id(self, event_name: str) -> str | None:
        """The id of the active billing meter with this event_name (for its summaries)."""

    def meter_event_summaries(self, meter_id: str, customer_id: str, start: int, end: int, *,
                              window: str | None = None) -> list[MeterSummaryView]:
        """Stripe's aggregation of the customer's events on the meter over [start, end), oldest
        first (every page): one summary, or one per `window` ("hour" or "day"). Stripe wants both
        bounds on minute boundaries (hour or UTC-day ones when grouped; else `PermanentError`), and
        it aggregates asynchronously: events just sent may not be counted yet."""
