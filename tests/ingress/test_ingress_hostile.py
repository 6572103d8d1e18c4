"""Hostile *signed* webhooks: whatever the body, the answer is 400 (or 200 for a real event), never a
5xx, and nothing unusable is enqueued. The cases are tables: a new one is one line."""
from __future__ import annotations

import json

import pytest

from hostile_events import HOSTILE_EVENTS, HOSTILE_TENANT_IDS, deep, hostile_event, valid_event
from ingress_helpers import body_of, signed


@pytest.fixture
def broker_kind():
    """Hostile input is refused before the broker: Redis alone is enough here."""
    return "redis"


def post(client, body: bytes):
    return client.post("/webhooks/stripe", content=body, headers=signed(body))


@pytest.mark.parametrize("name, path, value", HOSTILE_EVENTS, ids=[case[0] for case in HOSTILE_EVENTS])
def test_signed_event_of_the_wrong_shape_gets_400_and_nothing_is_enqueued(ingress_client, real_broker_url, queue,
                                                                         name, path, value):
    client = ingress_client(real_broker_url)
    response = post(client, body_of(hostile_event(path, value)))
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("body is not a Stripe event")
    assert queue.messages() == []


def _deep_event(depth: int) -> bytes:
    event = valid_event()
    event["data"]["object"]["padding"] = "@@"
    return body_of(event).replace(b'"@@"', b"[" * depth + b"]" * depth)


# Raw bodies (bytes, not events), each signed as it is.
HOSTILE_BODIES = [
    ("nested 1,000 deep", b"[" * 1000 + b"]" * 1000),
    ("object nested 1,000 deep", b'{"a":' * 1000 + b"1" + b"}" * 1000),
    ("event with data nested 1,000 deep", _deep_event(1000)),
    ("event with data nested 7,000 deep", _deep_event(7_000)),  # under the 16 KiB test limit
    ("raw NUL byte in a string", body_of(valid_event()).replace(b'"sub_123"', b'"sub_\x00123"')),
    ("invalid UTF-8", body_of(valid_event()).replace(b'"sub_123"', b'"sub_\xff\xfe"')),
    ("an integer of 5,000 digits", body_of(valid_event()).replace(b'"pending_webhooks": 1', b'"x": ' + b"9" * 5000)),
    ("NaN", body_of(valid_event()).replace(b'"pending_webhooks": 1', b'"created": NaN')),
    ("a number that overflows to Infinity", body_of(valid_event()).replace(b'"pending_webhooks": 1', b'"x": 1e999')),
    ("UTF-16", body_of(valid_event()).decode().encode("utf-16")),
    ("UTF-16 without a BOM", body_of(valid_event()).decode().encode("utf-16-le")),
    ("UTF-32", body_of(valid_event()).decode().encode("utf-32")),
    ("UTF-8 with a byte-order mark", b"\xef\xbb\xbf" + body_of(valid_event())),
    ("a JSON array", json.dumps([valid_event()]).encode()),
    ("a JSON string", b'"evt_123"'),
    ("a JSON number", b"5"),
    ("null", b"null"),
    ("empty", b""),
    ("a pickle", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x02id\x94\x8c\x03evt\x94s."),
]


@pytest.mark.parametrize("name, body", HOSTILE_BODIES, ids=[case[0] for case in HOSTILE_BODIES])
def test_signed_hostile_body_gets_400_never_5xx(ingress_client, real_broker_url, queue, name, body):
    client = ingress_client(real_broker_url)
    response = post(client, body)
    assert response.status_code == 400, response.text
    assert "error" in response.json()
    assert queue.messages() == []


@pytest.mark.parametrize("name, tenant_id", HOSTILE_TENANT_IDS, ids=[case[0] for case in HOSTILE_TENANT_IDS])
def test_an_event_whose_metadata_breaks_the_tenant_id_rule_is_still_a_stripe_event(
        ingress_client, real_broker_url, queue, name, tenant_id):
    """Stripe lets anyone write any metadata: the event is genuine and is taken (the worker then
    does not take it for a tenant)."""
    client = ingress_client(real_broker_url)
    event = valid_event()
    event["data"]["object"]["metadata"] = {"tenant_id": tenant_id}
    assert post(client, body_of(event)).status_code == 200
    assert [m.args[0]["event"]["id"] for m in queue.messages()] == [event["id"]]


def test_nesting_within_the_limit_is_accepted(ingress_client, real_broker_url, queue):
    """Stripe's own events nest about ten levels deep (expanded objects, lists of items)."""
    client = ingress_client(real_broker_url)
    event = valid_event()
    event["data"]["object"]["items"] = deep(20, {"id": "si_1"})
    assert post(client, body_of(event)).status_code == 200
    assert len(queue.messages()) == 1
