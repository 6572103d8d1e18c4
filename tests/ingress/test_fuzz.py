"""Fuzz runs (hypothesis, bounded) of the webhook ingress, the worker's event decoding and handlers,
and the read API. Whatever comes in: no 5xx, no uncaught exception, and what the ingress accepts
the worker can decode. Part of the slow suite (CI runs it); each run is a few hundred examples.

The generators start from the hostile tables (tests/hostile_events.py) and from a valid event, so
most examples are near-misses that reach deep into the checks rather than random noise.
"""
from __future__ import annotations

import contextlib
import json
import string
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.testclient import TestClient

from billing_sync.bootstrap import bootstrap
from billing_sync.errors import InvalidMessage, PermanentError
from billing_sync.ingress.app import create_app
from billing_sync.ingress.read_api import routes
from billing_sync.models import EntitlementSnapshot, Tenant, utcnow

from contexts import make_bus, received
from fakes import FakeGateway
from hostile_events import HOSTILE_EVENTS, patched, valid_event
from ingress_helpers import SECRETS, signed

pytestmark = pytest.mark.slow

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

# Any text Python can hold: NUL, control characters, lone surrogates, astral planes.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
json_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
             | st.floats(allow_nan=False, allow_infinity=False) | any_text)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(any_text, inner, max_size=4), max_leaves=12)

# Where the handlers look, and so where a mutation hurts most. Deep fields first: hypothesis
# favours the first entries, and a broken top-level field stops every check after it.
PATHS = ["data.object.metadata.tenant_id", "data.object.customer", "data.object.items", "data.object.metadata",
         "data.object.product", "data.object.subscription", "data.object.parent", "data.object.object",
         "data.object.id", "data.object.deleted", "livemode", "created", "data.object", "data", "object", "type",
         "id"]
TYPES = ["customer.updated", "customer.deleted", "customer.subscription.updated", "invoice.paid",
         "product.updated", "price.updated", "entitlements.active_entitlement_summary.updated", "x.unknown"]


@st.composite
def events(draw) -> object:
    """A valid event with a few fields replaced by hostile or random values, or random JSON."""
    choice = draw(st.integers(0, 9))  # hypothesis favours 0: a valid event, mutated
    if choice == 9:
        return draw(json_value)
    event = valid_event(draw(st.sampled_from(TYPES)))
    if choice == 8:
        _name, path, value = draw(st.sampled_from(HOSTILE_EVENTS))
        event = patched(event, path, value)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(PATHS))
        with contextlib.suppress(KeyError, TypeError, IndexError):  # a parent on the path was replaced already
            event = patched(event, path, draw(json_value))
    return event


def encode(event: object, ensure_ascii: bool) -> bytes:
    return json.dumps(event, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


header_text = st.text(st.sampled_from(string.printable[:-5] + "éü\x80\xff"), max_size=120)


@pytest.fixture
def webhook_client(make_settings, sqlite_url):
    settings_ = make_settings(database_url=sqlite_url, webhook_secrets=",".join(SECRETS))
    bus = bootstrap(settings_)
    enqueued: list[dict] = []
    with TestClient(create_app(bus, enqueue=enqueued.append)) as client:  # an exception fails the test
        yield client, enqueued, bus
    bus.engine.dispose()


def _check_webhook_answer(response, enqueued: list[dict], bus) -> None:
    assert response.status_code in (200, 400, 413), (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code == 200:
        [message] = enqueued
        received(bus, message)  # what the ingress takes, the worker can decode
    else:
        assert enqueued == []
    enqueued.clear()


@FUZZ
@given(event=events(), ensure_ascii=st.booleans())
def test_fuzz_signed_events(webhook_client, event, ensure_ascii):
    client, enqueued, bus = webhook_client
    body = encode(event, ensure_ascii)
    _check_webhook_answer(client.post("/webhooks/stripe", content=body, headers=signed(body)), enqueued, bus)


@FUZZ
@given(body=st.binary(max_size=300) | st.builds(lambda n, b: b"[" * n + b, st.integers(0, 5000), st.binary(max_size=8)))
def test_fuzz_signed_raw_bodies(webhook_client, body):
    client, enqueued, bus = webhook_client
    _check_webhook_answer(client.post("/webhooks/stripe", content=body, headers=signed(body)), enqueued, bus)


@FUZZ
@given(signature=header_text, content_type=header_text, extra=st.dictionaries(
    st.text(string.ascii_letters + "-", min_size=1, max_size=20), header_text, max_size=3))
def test_fuzz_signature_and_other_headers(webhook_client, signature, content_type, extra):
    client, enqueued, _ = webhook_client
    body = encode(valid_event(), True)
    headers = {**{k: v.encode("latin-1") for k, v in extra.items()},
               "Stripe-Signature": signature.encode("latin-1"), "Content-Type": content_type.encode("latin-1")}
    response = client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 400, response.text  # never signed with our secret
    assert enqueued == []


@FUZZ
@given(event=events())
def test_fuzz_worker_decoding_and_handlers(make_settings, pg_engine, event):
    """The worker's side, for events that bypass the ingress (catch-up, dlq replay), on PostgreSQL
    (which refuses NUL and over-long values where SQLite does not): an unusable event is
    InvalidMessage, a usable one is handled. Nothing else escapes: no TypeError, no database
    error, and no TransientError either (nothing here is down)."""
    gateway = FakeGateway()
    bus = make_bus(make_settings(database_url=str(pg_engine.url)), pg_engine, gateway, utcnow)
    # The customer and subscription valid_event() is about exist, so usable events reach the writes.
    prices = gateway.seed_catalog(bus.catalog)
    gateway.add_customer("t1", id="cus_123")
    gateway.add_subscription("cus_123", prices["pro"]["id"], id="sub_123")
    message = {"event": event, "received_at": utcnow().isoformat()}
    try:
        event_received = received(bus, message)
    except InvalidMessage:
        return
    try:
        outcome = bus.handle(event_received)
    except PermanentError:
        return
    assert isinstance(outcome, str) and outcome


# -- the read API ---------------------------------------------------------------------------------

segment = (st.binary(max_size=40).map(lambda raw: quote(raw, safe=""))
           | any_text.map(lambda text: quote(text, safe="", errors="surrogatepass"))
           | st.sampled_from(["t1", "T-1.a:b_c", "nobody", "", "%00", "..", "%2F"]))


@pytest.fixture
def read_client(pg_engine, make_settings):
    settings_ = make_settings(database_url=str(pg_engine.url), api_tokens="reader-1,reader-2")
    bus = make_bus(settings_, pg_engine, FakeGateway(), utcnow)
    with bus.uow_factory() as uow:
        uow.session.add(Tenant(id="t1"))
        uow.session.flush()
        uow.session.add(EntitlementSnapshot(tenant_id="t1", version=2, plan="pro", status="active",
                                            features=["sso"], limits={"api_calls": 10}, cause="evt_1",
                                            updated_at=utcnow()))
        uow.commit()
    with TestClient(Starlette(routes=routes(bus))) as client:
        yield client


@FUZZ
@given(tenant=segment, feature=st.none() | segment, token=st.sampled_from(["reader-2", "nope", ""]) | header_text,
       scheme=st.sampled_from(["Bearer", "bearer", "Basic", ""]), if_none_match=st.none() | header_text)
def test_fuzz_read_api(read_client, tenant, feature, token, scheme, if_none_match):
    path = f"/v1/tenants/{tenant}/entitlements" + (f"/{feature}" if feature is not None else "")
    headers = {"Authorization": f"{scheme} {token}".encode("latin-1")}
    if if_none_match is not None:
        headers["If-None-Match"] = if_none_match.encode("latin-1")
    response = read_client.get(path, headers=headers)
    assert response.status_code in (200, 304, 400, 401, 404, 405), (path, response.status_code, response.text)
    if "etag" in response.headers:
        response.headers["etag"].encode("ascii")
