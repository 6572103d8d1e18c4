"""The emulator's in-memory account: every object by type and id, the event log, the
idempotency cache. One re-entrant lock guards all of it; the HTTP layer takes it around each
request, so handlers are plain code that never races.

Objects are kept in the shape Stripe serves them; keys starting with `_` are ours (bookkeeping
such as the creation sequence) and are stripped whenever an object leaves the emulator.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable

from .errors import missing
from .ids import new_id
from .shapes import deleted, template

API_VERSION = "2026-10-28.endive"
# Stripe keeps idempotency keys for 24 hours; we keep the most recent ones (every SDK POST sends
# a key, so an unbounded cache would grow with the request count of a long benchmark).
IDEMPOTENCY_CAPACITY = 100_000

# Words Stripe uses in "No such …" messages.
NOUN = {
    "customer": "customer", "payment_method": "PaymentMethod", "product": "product", "price": "price",
    "subscription": "subscription", "subscription_item": "subscription item", "invoice": "invoice",
    "event": "event", "entitlements.feature": "feature", "product_feature": "product feature",
    "billing.meter": "billing meter", "test_helpers.test_clock": "test clock",
    "webhook_endpoint": "webhook endpoint", "entitlements.active_entitlement": "active entitlement",
    "checkout.session": "checkout.session", "billing_portal.session": "billing portal session",
    "setup_intent": "setupintent", "payment_intent": "payment_intent",
}


def public(obj):
    """A deep copy without our bookkeeping keys: what goes on the wire."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    return obj


class Store:
    def __init__(self):
        self.lock = threading.RLock()
        self.clock_ready = threading.Condition(self.lock)   # notified when a test clock finishes advancing
        self.faults = None                                  # set by the server: dunning length lives there
        self._local = threading.local()
        self.on_event: Callable[[dict], int | None] | None = None  # returns the webhooks pending
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.objects: dict[str, dict[str, dict]] = defaultdict(dict)
            self.index: dict[str, str] = {}
            self.seq = itertools.count(1)
            self.idempotency: OrderedDict[str, dict] = OrderedDict()   # oldest first, capped
            self.entitlement_ids: dict[tuple[str, str], str] = {}
            self.entitlements: dict[str, tuple[str, ...]] = {}
            self.renderers: dict[str, Callable[[dict], dict]] = getattr(self, "renderers", {})

    # -- objects --------------------------------------------------------------------------------

    def add(self, obj: dict) -> dict:
        kind = obj["object"]
        obj["_seq"] = next(self.seq)
        obj["_added_at"] = time.monotonic()   # for the search index lag knob
        self.objects[kind][obj["id"]] = obj
        self.index[obj["id"]] = kind
        return obj

    def get(self, kind: str, object_id) -> dict | None:
        if not isinstance(object_id, str):
            return None
        return self.objects[kind].get(object_id)

    def stored(self, kind: str, object_id: str) -> dict:
        """An object this store refers to itself (an item's price, a subscription's customer): it is
        there by construction, so a miss is a bug (KeyError), not a client's 404."""
        return self.objects[kind][object_id]

    def require(self, kind: str, object_id, *, param: str | None = "id") -> dict:
        obj = self.get(kind, object_id)
        if obj is None or obj.get("_deleted"):
            raise missing(NOUN.get(kind, kind), str(object_id), param=param)
        return obj

    def find(self, object_id: str) -> dict | None:
        kind = self.index.get(object_id)
        return self.objects[kind].get(object_id) if kind else None

    def all(self, kind: str) -> list[dict]:
        return list(self.objects[kind].values())

    def live(self, kind: str) -> list[dict]:
        """The objects of a type that are not deleted (what lists and searches see)."""
        return [obj for obj in self.objects[kind].values() if not obj.get("_deleted")]

    def render(self, obj: dict) -> dict:
        """The public shape of a stored object (some types are assembled from several)."""
        renderer = self.renderers.get(obj["object"])
        return renderer(obj) if renderer else public(obj)

    def delete(self, obj: dict, event_type: str | None = None) -> dict:
        """Delete as Stripe does: the object stays known (a retrieve may say `deleted`, a write is a
        404), `event_type` (e.g. `customer.deleted`) carries its last shape; returns Stripe's
        deleted stub `{"id", "object", "deleted": true}`."""
        body = self.render(obj) if event_type else None
        obj["_deleted"] = True
        if event_type and body is not None:
            self.emit(event_type, body)
        return deleted(obj["object"], obj["id"])

    def remember(self, key: str, saved: dict) -> None:
        self.idempotency[key] = saved
        while len(self.idempotency) > IDEMPOTENCY_CAPACITY:
            self.idempotency.popitem(last=False)

    # -- time -----------------------------------------------------------------------------------

    def now(self, clock_id: str | None = None) -> int:
        """Frozen time for objects on a test clock, real time for the rest."""
        if clock_id:
            clock = self.get("test_helpers.test_clock", clock_id)
            if clock is not None:
                return clock["frozen_time"]
        return int(time.time())

    def customer_now(self, customer: dict | None) -> int:
        return self.now(customer.get("test_clock") if customer else None)

    # -- the request being served (for event.request and entitlement refreshes) -----------------

    def begin_request(self, request_id: str | None, idempotency_key: str | None) -> None:
        self._local.request = {"id": request_id, "idempotency_key": idempotency_key}
        self._local.touched = set()

    def set_request(self, request_id: str | None, idempotency_key: str | None) -> None:
        """What `event.request` says for the events emitted from now on (None: automatic)."""
        self._local.request = {"id": request_id, "idempotency_key": idempotency_key}

    def end_request(self) -> set[str]:
        touched: set[str] = getattr(self._local, "touched", set())
        self._local.request = None
        self._local.touched = set()
        return touched

    def touch(self, customer_id: str | None) -> None:
        """Note a customer whose active entitlements may have changed."""
        if customer_id:
            if getattr(self._local, "touched", None) is None:
                self._local.touched = set()
            self._local.touched.add(customer_id)

    def touched(self) -> set[str]:
        return getattr(self._local, "touched", None) or set()

    # -- events ---------------------------------------------------------------------------------

    def emit(self, type_: str, obj: dict, previous: dict | None = None) -> dict:
        event = template("event")
        request = getattr(self._local, "request", None) or {"id": None, "idempotency_key": None}
        event.update({
            "id": new_id("evt", 24),
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": public(obj)},   # a snapshot: later changes to obj do not leak in
            "livemode": False,
            "pending_webhooks": 0,
            "request": dict(request),
            "type": type_,
        })
        if previous is not None:
            event["data"]["previous_attributes"] = public(previous)
        self.add(event)
        if self.on_event:   # only our top-level bookkeeping keys to drop: data is already a copy
            wire = {k: v for k, v in event.items() if not k.startswith("_")}
            event["pending_webhooks"] = self.on_event(wire) or 0
        return event

    def emit_update(self, type_: str, before: dict, after: dict) -> dict | None:
        """`*.updated` with Stripe's previous_attributes; nothing when nothing changed."""
        previous = diff(before, after)
        if not previous:
            return None
        return self.emit(type_, after, previous)


def diff(before: dict, after: dict) -> dict:
    """Stripe's previous_attributes: the old values of what changed; nested hashes recurse,
    keys that did not exist before are reported as null."""
    out: dict[str, object] = {}
    for key in set(before) | set(after):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and old.get("object") != "list":
            out[key] = diff(old, new)
        else:
            out[key] = old
    return out


def newest_first(objs: Iterable[dict]) -> list[dict]:
    return sorted(objs, key=sort_key, reverse=True)


def sort_key(obj: dict) -> tuple:
    return (obj.get("created") or 0, obj.get("_seq") or 0)
