"""Hostile Stripe events, one line each: shared by the ingress tests, the worker tests and the fuzz run.

Each case is (name, path, value): a valid event with the field at `path` (dotted; `-` removes the
field) replaced by `value`. None of these is a Stripe event the handlers can use, so each must be
refused: 400 at the ingress, one dead letter with reason `invalid` at the worker (events also reach
the worker through the scheduler's catch-up and `dlq replay`, without passing the ingress).
"""
from __future__ import annotations

import copy
import time
import uuid

REMOVE = object()


def deep(depth: int, leaf: object = 1) -> object:
    """`depth` nested lists around `leaf`."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


HOSTILE_EVENTS = [
    ("id is a number", "id", 5),
    ("id is null", "id", None),
    ("id is missing", "id", REMOVE),
    ("id is empty", "id", ""),
    ("id is not evt_", "id", "cus_123"),
    ("id over the column width", "id", "evt_" + "a" * 300),
    ("id with NUL", "id", "evt_a\x00b"),
    ("id with a lone surrogate", "id", "evt_a\ud800b"),
    ("id with non-ASCII", "id", "evt_é"),
    ("id with a slash", "id", "evt_a/../b"),
    ("id is an object", "id", {"id": "evt_1"}),
    ("type is null", "type", None),
    ("type is a number", "type", 5),
    ("type is empty", "type", ""),
    ("type with NUL", "type", "customer.\x00updated"),
    ("type with a lone surrogate", "type", "customer.\udfffupdated"),
    ("type over the column width", "type", "a." * 100),
    ("type with spaces", "type", "customer updated"),
    ("object is not event", "object", "customer"),
    ("object is missing", "object", REMOVE),
    ("created is a string", "created", "yesterday"),
    ("created is a boolean", "created", True),
    ("created is a float", "created", 1.5),
    ("data is missing", "data", REMOVE),
    ("data is a string", "data", "x"),
    ("data.object is missing", "data.object", REMOVE),
    ("data.object is a string", "data.object", "sub_123"),
    ("data.object is a list", "data.object", ["sub_123"]),
    ("data.object is null", "data.object", None),
    ("data.object.id is a number", "data.object.id", 5),
    ("data.object.id with NUL", "data.object.id", "sub_\x00"),
    ("data.object.id over the column width", "data.object.id", "sub_" + "x" * 300),
    ("data.object.object is a number", "data.object.object", 5),
    ("customer is a number", "data.object.customer", 5),
    ("customer with NUL", "data.object.customer", "cus_\x00"),
    ("customer with a lone surrogate", "data.object.customer", "cus_\ud800"),
    ("customer over the column width", "data.object.customer", "cus_" + "x" * 300),
    ("customer is a list", "data.object.customer", ["cus_1"]),
    ("expanded customer without an id", "data.object.customer", {"object": "customer"}),
    ("expanded customer with a numeric id", "data.object.customer", {"id": 5}),
    ("product with a slash", "data.object.product", "prod_1/../../v1/customers"),
    ("subscription is a number", "data.object.subscription", 5),
    ("parent is a string", "data.object.parent", "x"),
    ("subscription_details is a number", "data.object.parent", {"subscription_details": 5}),
    ("parent's subscription with NUL", "data.object.parent", {"subscription_details": {"subscription": "sub_\x00"}}),
    ("metadata is a string", "data.object.metadata", "tenant_id=t1"),
    ("metadata is a list", "data.object.metadata", ["t1"]),
    ("nested 100 deep", "data.object.padding", deep(100)),
]

# Usable events whose metadata `tenant_id` breaks the tenant-id rule: not refused (Stripe's
# customers may carry any metadata), but never taken for a tenant: the handler ignores them.
HOSTILE_TENANT_IDS = [
    ("tenant id with NUL", "t\x001"),
    ("tenant id with a lone surrogate", "t\ud8001"),
    ("tenant id over the column width", "t" * 300),
    ("tenant id is a number", 5),
    ("tenant id is an object", {"id": "t1"}),
    ("tenant id with non-Latin-1", "租户"),
]


def valid_event(type_: str = "customer.subscription.updated", event_id: str | None = None) -> dict:
    """A usable event as Stripe sends it (API 2026-10-28), about subscription sub_123 of cus_123."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "api_version": "2026-10-28",
        "created": int(time.time()),
        "type": type_,
        "livemode": False,
        "pending_webhooks": 1,
        "data": {"object": {"id": "sub_123", "object": "subscription", "customer": "cus_123",
                            "metadata": {}}},
    }


def patched(event: dict, path: str, value: object) -> dict:
    """A copy of `event` with `path` set to `value` (or removed, for REMOVE)."""
    event = copy.deepcopy(event)
    *parents, last = path.split(".")
    node = event
    for key in parents:
        node = node[key]
    if value is REMOVE:
        node.pop(last, None)
    else:
        node[last] = value
    return event


def hostile_event(path: str, value: object) -> dict:
    return patched(valid_event(), path, value)
