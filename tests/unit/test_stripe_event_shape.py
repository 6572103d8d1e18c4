"""contract/stripe_event.py accepts what Stripe sends and says which field makes an event unusable."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from billing_sync.contract.stripe_event import MAX_DEPTH, EventProblem, NotJSON, event_problem, loads, read_event

from hostile_events import HOSTILE_EVENTS, deep, hostile_event, valid_event

# Stripe's published example objects, as the emulator ships them.
FIXTURES = Path(__file__).resolve().parents[2] / "emulator" / "fixtures.json"
# The objects whose events the handlers take.
HANDLED = ["customer", "subscription", "invoice", "price", "product", "plan",
           "entitlements.active_entitlement_summary", "deleted_customer", "deleted_product",
           "checkout.session", "setup_intent", "payment_method"]  # a Checkout Session's id is 66 characters


def _resources() -> dict:
    return json.loads(FIXTURES.read_text())["resources"]


@pytest.mark.parametrize("name", HANDLED)
def test_events_about_stripe_fixture_objects_are_usable(name):
    obj = _resources()[name]
    event = {"id": "evt_1Pgc76B7WZ01zgkWwyRHS12y", "object": "event", "api_version": "2026-10-28",
             "created": 1721948530, "type": f"{name}.updated", "livemode": False, "pending_webhooks": 1,
             "request": {"id": None, "idempotency_key": None}, "data": {"object": obj, "previous_attributes": {}}}
    assert event_problem(event) is None


def test_the_fixture_event_itself_is_usable():
    assert event_problem(_resources()["event"]) is None


@pytest.mark.parametrize("name, path, value", HOSTILE_EVENTS, ids=[case[0] for case in HOSTILE_EVENTS])
def test_hostile_event_is_unusable_and_the_problem_names_the_field_not_the_value(name, path, value):
    problem = event_problem(hostile_event(path, value))
    assert problem is not None
    if path != "data.object.padding":
        assert problem.startswith(path.split(".")[0])
    if isinstance(value, str) and len(value) > 3:
        assert value not in problem


def test_nesting_is_bounded_at_max_depth():
    event = valid_event()
    event["data"]["object"]["padding"] = deep(MAX_DEPTH - 4)  # event > data > object > padding
    assert event_problem(event) is None
    event["data"]["object"]["padding"] = deep(MAX_DEPTH)
    assert "deep" in event_problem(event)


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a": NaN}', b'{"a": Infinity}', b"\xff", b'"\\ud800" x', b""])
def test_loads_refuses_what_is_not_strict_json(body):
    with pytest.raises(NotJSON):
        loads(body)


def test_loads_reads_escaped_surrogates_and_nul_as_text():
    """JSON may escape anything; whether a field may hold it is event_problem's business."""
    assert loads(b'{"a": "\\u0000\\ud800"}') == {"a": "\x00\ud800"}


def _about(obj: dict, type_: str = "thing.updated") -> dict:
    event = valid_event(type_, event_id="evt_facts1")
    event["data"]["object"] = obj
    return event


@pytest.mark.parametrize("obj, facts", [
    ({"id": "cus_1", "object": "customer", "metadata": {"tenant_id": "acme"}},
     {"customer_id": "cus_1", "subscription_id": None, "metadata_tenant_id": "acme"}),
    ({"id": "sub_1", "object": "subscription", "customer": {"id": "cus_2", "object": "customer"}},
     {"customer_id": "cus_2", "object_id": "sub_1", "subscription_id": None}),
    ({"id": "in_1", "object": "invoice", "customer": "cus_3",
      "parent": {"subscription_details": {"subscription": "sub_3"}}, "subscription": "sub_old"},
     {"customer_id": "cus_3", "subscription_id": "sub_3"}),
    ({"id": "in_2", "object": "invoice", "customer": "cus_4", "subscription": {"id": "sub_4"}},
     {"subscription_id": "sub_4"}),
    ({"id": "price_1", "object": "price", "product": "prod_1"}, {"product_id": "prod_1", "customer_id": None}),
    ({"object": "entitlements.active_entitlement_summary", "customer": "cus_5"},
     {"object_id": None, "customer_id": "cus_5"}),
    ({"id": "cus_6", "object": "customer", "metadata": {"tenant_id": "has space"}}, {"metadata_tenant_id": None}),
    ({"id": "cus_7", "object": "customer", "metadata": {"tenant_id": 7}}, {"metadata_tenant_id": None}),
])
def test_the_check_reads_the_references_the_handlers_follow(obj, facts):
    read = read_event(_about(obj))
    assert (read.id, read.type, read.object_type) == ("evt_facts1", "thing.updated", obj["object"])
    assert {name: getattr(read, name) for name in facts} == facts


def test_an_unusable_event_raises_the_same_problem_event_problem_names():
    event = _about({"id": "cus 1", "object": "customer"})
    with pytest.raises(EventProblem) as problem:
        read_event(event)
    assert str(problem.value) == event_problem(event) and "data.object.id" in str(problem.value)
