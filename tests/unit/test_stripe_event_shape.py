"""contract/stripe_event.py accepts what Stripe sends and says which field makes an event unusable."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from billing_sync.contract.stripe_event import MAX_DEPTH, NotJSON, event_problem, loads

from hostile_events import HOSTILE_EVENTS, deep, hostile_event, valid_event

# Stripe's published example objects, as the emulator ships them.
FIXTURES = Path(__file__).resolve().parents[2] / "emulator" / "fixtures.json"
# The objects whose events the handlers take.
HANDLED = ["customer", "subscription", "invoice", "price", "product", "plan",
           "entitlements.active_entitlement_summary", "deleted_customer", "deleted_product"]


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
