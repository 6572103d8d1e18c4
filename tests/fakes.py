"""In-memory stand-ins for unit tests (tests/unit only; integration tests use the real services).

`FakeGateway` has the same wire methods as `billing_sync.bms.gateway.StripeGateway` and returns the
same plain-dict shapes (Stripe API 2026-10-28: periods on subscription items, the price embedded
in each item with `lookup_key` and `product` as an id, customer `metadata.tenant_id`). Its state
is a set of dicts keyed by id, so a test arranges the world by writing to them (or with the
`add_*` / `set_*` helpers) and asserts on them afterwards. Every gateway call is recorded in
`calls`, so a test can count Stripe reads; `fail_next` makes the next call of a method raise.

Import it from a test as `from fakes import FakeGateway` (pytest puts tests/ on sys.path).
"""
from __future__ import annotations

import copy
import itertools
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from billing_sync.bms.billing_intents import BillingPageIntents
from billing_sync.bms.requests import DuplicateMeterEvent, StripeIntents
from billing_sync.bms.selfserve_requests import SelfServeIntents
from contexts import Clock, make_bus
from fakes_selfserve import SelfServeFakeWire


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


class FakeGateway(SelfServeFakeWire, StripeIntents, SelfServeIntents, BillingPageIntents):
    """A stateful, dict-backed Stripe: what was written can be read back, as with the real one.
    The `BillingGateway` intents come from the same mixin as the real adapter's, so they send the
    same requests to these wire methods; the contract suite checks both answer alike."""

    def __init__(self, clock: Callable[[], datetime] | None = None):
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        # The state of "Stripe", keyed by object id. Reads return deep copies.
        self.customers: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.products: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}
        self.product_features: dict[str, list[str]] = {}  # product id -> feature lookup_keys
        self.active_entitlements: dict[str, list[str]] = {}  # customer id -> feature lookup_keys
        self.events: list[dict] = []
        self.meter_events: list[dict] = []
        self.test_clocks: dict[str, dict] = {}
        # idempotency key -> the response first given for it (write methods use _idempotent).
        self.idempotency: dict[str, Any] = {}
        # Observability for tests.
        self.calls: list[tuple[str, tuple]] = []
        self._failures: dict[str, list[Exception]] = {}
        self._ids = itertools.count(1)

    # -- test plumbing ------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def now_ts(self) -> int:
        return _ts(self.clock())

    def count(self, method: str) -> int:
        """How many times `method` was called."""
        return Counter(name for name, _ in self.calls)[method]

    def reset_calls(self) -> None:
        self.calls.clear()

    def fail_next(self, method: str, exc: Exception, times: int = 1) -> None:
        """Make the next `times` calls of `method` raise `exc` (e.g. errors.TransientError())."""
        self._failures.setdefault(method, []).extend([exc] * times)

    def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    def _idempotent(self, key: str | None, make: Callable[[], Any]) -> Any:
        """Replay the first response for a repeated idempotency key, as Stripe does."""
        if key and key in self.idempotency:
            return copy.deepcopy(self.idempotency[key])
        result = make()
        if key:
            self.idempotency[key] = copy.deepcopy(result)
        return result

    @staticmethod
    def _page(items: list[dict]) -> Iterator[dict]:
        return iter([copy.deepcopy(item) for item in items])

    # -- arranging the world (Stripe-shaped objects) ------------------------------------------

    def add_customer(self, tenant_id: str | None = None, *, id: str | None = None, **fields: Any) -> dict:
        cid = id or self.new_id("cus")
        customer = {
            "id": cid, "object": "customer", "created": self.now_ts(), "livemode": False,
            "email": None, "name": None, "address": None, "test_clock": None,
            "metadata": {"tenant_id": tenant_id} if tenant_id else {},
        }
        customer.update(fields)
        self.customers[cid] = customer
        return copy.deepcopy(customer)

    def add_product(self, name: str = "Product", *, id: str | None = None, metadata: dict | None = None,
                    features: list[str] | None = None, **fields: Any) -> dict:
        pid = id or self.new_id("prod")
        product = {
            "id": pid, "object": "product", "name": name, "active": True, "created": self.now_ts(),
            "updated": self.now_ts(), "livemode": False, "metadata": dict(metadata or {}),
            "default_price": None, "type": "service",
        }
        product.update(fields)
        self.products[pid] = product
        self.product_features[pid] = list(features or [])
        return copy.deepcopy(product)

    def add_price(self, product: str, *, lookup_key: str | None = None, unit_amount: int = 1000,
                  currency: str = "usd", interval: str = "month", id: str | None = None, **fields: Any) -> dict:
        pid = id or self.new_id("price")
        price = {
            "id": pid, "object": "price", "active": True, "created": self.now_ts(), "livemode": False,
            "currency": currency, "lookup_key": lookup_key, "metadata": {}, "nickname": None,
            "product": product, "type": "recurring", "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount), "billing_scheme": "per_unit",
            "recurring": {"interval": interval, "interval_count": 1, "meter": None,
                          "usage_type": "licensed", "trial_period_days": None},
        }
        price.update(fields)
        self.prices[pid] = price
        return copy.deepcopy(price)

    def seed_catalog(self, catalog) -> dict[str, dict]:
        """A product and a price (with the plan's lookup_key) for every paid plan of a Catalog."""
        prices = {}
        for plan in catalog.paid_plans:
            product = self.add_product(plan.name, metadata={"plan": plan.key})
            prices[plan.key] = self.add_price(product["id"], lookup_key=plan.price.lookup_key,
                                              unit_amount=plan.price.unit_amount, currency=plan.price.currency,
                                              interval=plan.price.interval)
        return prices

    def make_item(self, subscription_id: str, price: dict | str, quantity: int = 1, *,
                  period_start: int | None = None, period_end: int | None = None) -> dict:
        price_obj = copy.deepcopy(self.prices[price] if isinstance(price, str) else price)
        start = period_start if period_start is not None else self.now_ts()
        end = period_end if period_end is not None else start + 30 * 86400
        return {
            "id": self.new_id("si"), "object": "subscription_item", "created": self.now_ts(),
            "metadata": {}, "price": price_obj, "quantity": quantity, "subscription": subscription_id,
            "current_period_start": start, "current_period_end": end, "discounts": [], "tax_rates": [],
        }

    def add_subscription(self, customer: str, price: dict | str, *, quantity: int = 1, status: str = "active",
                         id: str | None = None, period_start: int | None = None, period_end: int | None = None,
                         **fields: Any) -> dict:
        """A subscription with one item. `price` is a price id, a lookup_key or a price dict."""
        if isinstance(price, str) and price not in self.prices:
            price = next(p for p in self.prices.values() if p["lookup_key"] == price)
        sid = id or self.new_id("sub")
        item = self.make_item(sid, price, quantity, period_start=period_start, period_end=period_end)
        sub = {
            "id": sid, "object": "subscription", "customer": customer, "status": status,
            "created": self.now_ts(), "start_date": self.now_ts(), "livemode": False, "metadata": {},
            "cancel_at_period_end": False, "cancel_at": None, "canceled_at": None, "ended_at": None,
            "trial_start": None, "trial_end": None, "latest_invoice": None, "test_clock": None,
            "items": {"object": "list", "data": [item], "has_more": False,
                      "url": f"/v1/subscription_items?subscription={sid}"},
        }
        sub.update(fields)
        self.subscriptions[sid] = sub
        return copy.deepcopy(sub)

    def set_subscription(self, subscription_id: str, **changes: Any) -> dict:
        """Change a subscription in place, as the dashboard would (status, cancel_at_period_end, …)."""
        self.subscriptions[subscription_id].update(changes)
        return copy.deepcopy(self.subscriptions[subscription_id])

    def set_item(self, subscription_id: str, *, price: dict | str | None = None, quantity: int | None = None) -> dict:
        """Change the first item's price and/or quantity."""
        item = self.subscriptions[subscription_id]["items"]["data"][0]
        if price is not None:
            if isinstance(price, str) and price not in self.prices:
                price = next(p for p in self.prices.values() if p["lookup_key"] == price)
            item["price"] = copy.deepcopy(self.prices[price] if isinstance(price, str) else price)
        if quantity is not None:
            item["quantity"] = quantity
        return copy.deepcopy(self.subscriptions[subscription_id])

    def set_active_entitlements(self, customer_id: str, lookup_keys: list[str]) -> None:
        self.active_entitlements[customer_id] = list(lookup_keys)

    def add_event(self, type: str, obj: dict, *, previous_attributes: dict | None = None,
                  created: int | None = None, id: str | None = None) -> dict:
        """Record a Stripe event (what a webhook delivers and GET /v1/events lists) and return it."""
        data: dict = {"object": copy.deepcopy(obj)}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        event = {
            "id": id or self.new_id("evt"), "object": "event", "api_version": "2026-10-28",
            "created": created if created is not None else self.now_ts(), "livemode": False,
            "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
            "type": type, "data": data,
        }
        self.events.append(event)
        return copy.deepcopy(event)

    # -- customers (StripeGateway API) --------------------------------------------------------

    def retrieve_customer(self, customer_id: str) -> dict | None:
        self._enter("retrieve_customer", customer_id)
        customer = self.customers.get(customer_id)
        return None if customer is None or customer.get("deleted") else copy.deepcopy(customer)

    def find_customer_for_tenant(self, tenant_id: str) -> dict | None:
        self._enter("find_customer_for_tenant", tenant_id)
        live = [c for c in self.customers.values()
                if not c.get("deleted") and c.get("metadata", {}).get("tenant_id") == tenant_id]
        return copy.deepcopy(min(live, key=lambda c: c["created"])) if live else None

    account_id = "acct_fake"

    def retrieve_account(self) -> dict:
        self._enter("retrieve_account")
        return {"id": self.account_id, "object": "account"}

    def list_customers(self) -> Iterator[dict]:
        self._enter("list_customers")
        return self._page([c for c in self.customers.values() if not c.get("deleted")])

    # -- the billing page's reads (issue 9; the objects live in SelfServeFakeWire's dicts) -------

    def retrieve_invoice(self, invoice_id: str) -> dict | None:
        self._enter("retrieve_invoice", invoice_id)
        invoice = self.invoice_objects.get(invoice_id)
        return {k: v for k, v in invoice.items() if not k.startswith("_")} if invoice else None

    def list_invoices(self, customer_id: str) -> list[dict]:
        self._enter("list_invoices", customer_id)
        mine = sorted((i for i in self.invoice_objects.values() if i["customer"] == customer_id),
                      key=lambda i: (i.get("created") or 0, i.get("_seq") or 0), reverse=True)
        return [{k: v for k, v in i.items() if not k.startswith("_")} for i in mine]

    def retrieve_setup_intent(self, setup_intent_id: str) -> dict | None:
        self._enter("retrieve_setup_intent", setup_intent_id)
        return copy.deepcopy(self.sessions.get(setup_intent_id))

    def retrieve_checkout_session(self, session_id: str) -> dict | None:
        self._enter("retrieve_checkout_session", session_id)
        return copy.deepcopy(self.sessions.get(session_id))

    # -- subscriptions ------------------------------------------------------------------------

    def retrieve_subscription(self, subscription_id: str) -> dict | None:
        self._enter("retrieve_subscription", subscription_id)
        sub = self.subscriptions.get(subscription_id)
        return None if sub is None or sub.get("deleted") else copy.deepcopy(sub)

    def list_subscriptions(self, *, customer: str | None = None, status: str = "all") -> Iterator[dict]:
        self._enter("list_subscriptions", customer, status)
        subs = [s for s in self.subscriptions.values() if not s.get("deleted")
                and (customer is None or s["customer"] == customer)]
        if status == "all":
            pass
        elif status == "active":  # Stripe's default list hides canceled ones
            subs = [s for s in subs if s["status"] not in ("canceled", "incomplete_expired")]
        else:
            subs = [s for s in subs if s["status"] == status]
        return self._page(subs)

    # -- catalog ------------------------------------------------------------------------------

    def find_price_by_lookup_key(self, lookup_key: str) -> dict | None:
        self._enter("find_price_by_lookup_key", lookup_key)
        for price in self.prices.values():
            if price["lookup_key"] == lookup_key and price["active"]:
                return copy.deepcopy(price)
        return None

    def retrieve_price(self, price_id: str) -> dict | None:
        self._enter("retrieve_price", price_id)
        price = self.prices.get(price_id)
        return None if price is None or price.get("deleted") else copy.deepcopy(price)

    def retrieve_product(self, product_id: str) -> dict | None:
        self._enter("retrieve_product", product_id)
        product = self.products.get(product_id)
        return None if product is None or product.get("deleted") else copy.deepcopy(product)

    def list_products(self) -> Iterator[dict]:
        self._enter("list_products")
        return self._page([p for p in self.products.values() if not p.get("deleted")])

    def list_product_feature_keys(self, product_id: str) -> list[str]:
        self._enter("list_product_feature_keys", product_id)
        return list(self.product_features.get(product_id, []))

    # -- entitlements and usage ---------------------------------------------------------------

    def list_active_entitlement_keys(self, customer_id: str) -> list[str]:
        self._enter("list_active_entitlement_keys", customer_id)
        return sorted(self.active_entitlements.get(customer_id, []))

    # -- events -------------------------------------------------------------------------------

    def list_events(self, *, created_gte: int | None = None, types: list[str] | None = None) -> Iterator[dict]:
        self._enter("list_events", created_gte, tuple(types or ()))
        events = [e for e in self.events
                  if (created_gte is None or e["created"] >= created_gte) and (not types or e["type"] in types)]
        # Stripe lists newest first.
        return self._page(sorted(events, key=lambda e: e["created"], reverse=True))

    def retrieve_event(self, event_id: str) -> dict | None:
        self._enter("retrieve_event", event_id)
        found = [e for e in self.events if e["id"] == event_id]
        return copy.deepcopy(found[0]) if found else None

    # -- write methods ------------------------------------------------------------------------
    # (create_customer, update_customer, create_subscription, update_subscription,
    #  cancel_subscription, create_product, create_price, create_meter_event, test clocks)
    # are added by the command handlers' tests; use _enter() and _idempotent() in them.

    # Writes, for the command handlers. Like Stripe, a repeated idempotency key replays the
    # first answer, and the same key with other parameters is an idempotency error — which is
    # what makes the handlers' "deterministic parameters per step" rule testable.

    DECLINED_CARDS = ("pm_card_chargeDeclined", "pm_card_visa_chargeDeclined")
    ENDED = ("canceled", "incomplete_expired")

    def _write(self, method: str, key: str | None, params: dict, make: Callable[[], Any]) -> Any:
        from billing_sync.errors import PermanentError

        seen = self.__dict__.setdefault("idempotency_params", {})
        if key and key in seen and seen[key] != (method, params):
            raise PermanentError(f"idempotency key {key!r} reused with other parameters", reason="invalid")
        result = self._idempotent(key, make)
        if key:
            seen[key] = (method, copy.deepcopy(params))
        return result

    @staticmethod
    def _not_found(what: str):
        from billing_sync.errors import NotFound

        return NotFound(f"No such {what}")

    def _payment_method(self, pm: str | None) -> str | None:
        from billing_sync.errors import PaymentFailed

        if pm in self.DECLINED_CARDS:
            raise PaymentFailed("Your card was declined.", reason="card_declined")
        return self.add_payment_method(pm)["id"] if pm else None

    def create_customer(self, params: dict, *, idempotency_key: str) -> dict:
        self._enter("create_customer", params, idempotency_key)

        def make() -> dict:
            fields = {k: params[k] for k in ("name", "email", "address", "test_clock") if k in params}
            pm = self._payment_method(params.get("payment_method"))
            fields["invoice_settings"] = {"default_payment_method": pm, "custom_fields": None, "footer": None}
            customer = self.add_customer(id=None, metadata=dict(params.get("metadata") or {}), **fields)
            if pm:
                self.payment_methods[pm]["customer"] = customer["id"]
            return customer

        return self._write("create_customer", idempotency_key, params, make)

    def update_customer(self, customer_id: str, params: dict, *, idempotency_key: str) -> dict:
        self._enter("update_customer", customer_id, params, idempotency_key)

        def make() -> dict:
            customer = self.customers.get(customer_id)
            if customer is None or customer.get("deleted"):
                raise self._not_found(f"customer: '{customer_id}'")
            for key, value in params.items():
                customer[key] = {**(customer.get(key) or {}), **value} if key == "metadata" else value
            return copy.deepcopy(customer)

        return self._write("update_customer", idempotency_key, {"id": customer_id, **params}, make)

    def create_subscription(self, params: dict, *, idempotency_key: str) -> dict:
        self._enter("create_subscription", params, idempotency_key)

        def make() -> dict:
            customer = self.customers.get(params["customer"])
            if customer is None:
                raise self._not_found(f"customer: '{params['customer']}'")
            (item,) = params["items"]
            if item["price"] not in self.prices:
                raise self._not_found(f"price: '{item['price']}'")
            pm = (customer.get("invoice_settings") or {}).get("default_payment_method")
            trial = params.get("trial_period_days")
            fields: dict = {"metadata": dict(params.get("metadata") or {}), "test_clock": customer.get("test_clock")}
            if trial:
                now = self.now_ts()
                fields.update(status="trialing", trial_start=now, trial_end=now + trial * 86400)
            elif not pm or params.get("payment_behavior") == "default_incomplete":
                fields["status"] = "incomplete"   # default_incomplete: nothing charged until confirmed
            if params.get("payment_settings"):
                fields["payment_settings"] = dict(params["payment_settings"])
            sub = self.add_subscription(customer["id"], item["price"], quantity=item.get("quantity", 1), **fields)
            return {**sub, "latest_invoice": self.add_invoice(sub)["id"]}

        return self._write("create_subscription", idempotency_key, params, make)

    def update_subscription(self, subscription_id: str, params: dict, *, idempotency_key: str) -> dict:
        self._enter("update_subscription", subscription_id, params, idempotency_key)

        def make() -> dict:
            from billing_sync.errors import PermanentError

            sub = self.subscriptions.get(subscription_id)
            if sub is None:
                raise self._not_found(f"subscription: '{subscription_id}'")
            if sub["status"] in self.ENDED and set(params) - {"metadata", "cancellation_details"}:
                raise PermanentError("A canceled subscription can only update its cancellation_details and metadata.",
                                     reason="invalid")  # Stripe's 400
            for change in params.get("items", []):
                item = next(i for i in sub["items"]["data"] if i["id"] == change["id"])
                if "price" in change:
                    item["price"] = copy.deepcopy(self.prices[change["price"]])
                if "quantity" in change:
                    item["quantity"] = change["quantity"]
            if "cancel_at_period_end" in params:
                sub["cancel_at_period_end"] = params["cancel_at_period_end"]
                sub["cancel_at"] = sub["items"]["data"][0]["current_period_end"] if params["cancel_at_period_end"] else None
            if "cancel_at" in params:  # a time, or "" to unset it
                sub["cancel_at"] = params["cancel_at"] or None
            if "default_payment_method" in params:
                sub["default_payment_method"] = params["default_payment_method"] or None
            return copy.deepcopy(sub)

        return self._write("update_subscription", idempotency_key, {"id": subscription_id, **params}, make)

    def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> dict:
        self._enter("cancel_subscription", subscription_id, idempotency_key)

        def make() -> dict:
            sub = self.subscriptions.get(subscription_id)
            if sub is None or sub["status"] in self.ENDED:  # Stripe: 404 for an ended one too
                raise self._not_found(f"subscription: '{subscription_id}'")
            now = self.now_ts()
            sub.update(status="canceled", canceled_at=now, ended_at=now)
            return copy.deepcopy(sub)

        return self._write("cancel_subscription", idempotency_key, {"id": subscription_id}, make)

    def create_meter_event(self, params: dict, *, idempotency_key: str) -> dict:
        self._enter("create_meter_event", params, idempotency_key)

        def make() -> dict:
            if any(e["identifier"] == params["identifier"] for e in self.meter_events):
                # Stripe keeps one event per identifier and refuses another (400, not retryable);
                # the same request under the same idempotency key replays the first answer instead.
                raise DuplicateMeterEvent(f"An event already exists with identifier {params['identifier']}.")
            event = {"object": "billing.meter_event", "created": self.now_ts(), "livemode": False, **params}
            self.meter_events.append(event)
            return copy.deepcopy(event)

        return self._write("create_meter_event", idempotency_key, params, make)

    def create_test_clock(self, frozen_time: int, name: str, *, idempotency_key: str) -> dict:
        self._enter("create_test_clock", frozen_time, name, idempotency_key)

        def make() -> dict:
            clock = {"id": self.new_id("clock"), "object": "test_helpers.test_clock", "created": self.now_ts(),
                     "frozen_time": frozen_time, "name": name, "status": "ready", "livemode": False}
            self.test_clocks[clock["id"]] = clock
            return copy.deepcopy(clock)

        return self._write("create_test_clock", idempotency_key, {"frozen_time": frozen_time, "name": name}, make)

    def create_product(self, params: dict, *, idempotency_key: str) -> dict:
        self._enter("create_product", params, idempotency_key)
        return self._write("create_product", idempotency_key, params, lambda: self.add_product(
            params["name"], metadata=params.get("metadata")))

    def create_price(self, params: dict, *, idempotency_key: str) -> dict:
        self._enter("create_price", params, idempotency_key)

        def make() -> dict:
            if params.get("transfer_lookup_key"):
                for price in self.prices.values():
                    if price["lookup_key"] == params.get("lookup_key"):
                        price["lookup_key"] = None
            return self.add_price(params["product"], lookup_key=params.get("lookup_key"),
                                  unit_amount=params["unit_amount"], currency=params["currency"],
                                  interval=params["recurring"]["interval"])

        return self._write("create_price", idempotency_key, params, make)

    def list_meters(self) -> Iterator[dict]:
        self._enter("list_meters")
        return self._page(list(self.__dict__.setdefault("meters", {}).values()))

    def create_meter(self, params: dict, *, idempotency_key: str) -> dict:
        self._enter("create_meter", params, idempotency_key)

        def make() -> dict:
            meter = {"id": self.new_id("mtr"), "object": "billing.meter", "status": "active",
                     "created": self.now_ts(), "livemode": False, **params}
            self.__dict__.setdefault("meters", {})[meter["id"]] = meter
            return copy.deepcopy(meter)

        return self._write("create_meter", idempotency_key, params, make)

    SUMMARY_WINDOWS = {None: 60, "hour": 3600, "day": 86400}   # also the alignment Stripe requires

    def list_meter_event_summaries(self, meter_id: str, params: dict) -> Iterator[dict]:
        """Stripe's summaries, newest first: the meter's formula over each window's events (the
        meter's by event_name, the customer's by its customer_mapping key)."""
        from billing_sync.errors import PermanentError

        self._enter("list_meter_event_summaries", meter_id, params)
        meter = self.__dict__.setdefault("meters", {}).get(meter_id)
        if meter is None:
            raise self._not_found(f"billing.meter: '{meter_id}'")
        grouping = params.get("value_grouping_window")
        step, start, end = self.SUMMARY_WINDOWS[grouping], params["start_time"], params["end_time"]
        if start % step or end % step or end <= start:
            raise PermanentError("start_time and end_time must be aligned, start before end", reason="invalid")
        key = (meter.get("customer_mapping") or {}).get("event_payload_key", "stripe_customer_id")
        events = [e for e in self.meter_events
                  if e["event_name"] == meter["event_name"] and e["payload"].get(key) == params["customer"]]
        windows = [(t, min(t + step, end)) for t in range(start, end, step)] if grouping else [(start, end)]
        summaries = []
        for low, high in reversed(windows):
            inside = sorted((e for e in events if low <= e["timestamp"] < high), key=lambda e: e["timestamp"])
            values = [float(e["payload"].get("value", 1)) for e in inside]
            value = {"sum": sum(values), "count": float(len(values)),
                     "last": values[-1] if values else 0.0}[meter["default_aggregation"]["formula"]]
            summaries.append({"id": f"mtrusg_{meter_id}_{low}_{high}", "object": "billing.meter_event_summary",
                              "aggregated_value": value, "start_time": low, "end_time": high,
                              "livemode": False, "meter": meter_id})
        return self._page(summaries)


class FakeWorld:
    """What a handler unit test starts from: a still clock, a FakeGateway seeded with the
    catalog's products and prices, and a bus over `engine`."""

    def __init__(self, engine, settings):
        self.clock = Clock()
        self.gw = FakeGateway(self.clock)
        self.bus = make_bus(settings, engine, self.gw, self.clock)
        self.prices = self.gw.seed_catalog(self.bus.catalog)
