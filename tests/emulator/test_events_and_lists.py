"""Events (filters, retrieve, shape of `request`) and list pagination, the same for every list."""
from __future__ import annotations

import time

import pytest
import stripe


def test_events_list_filters_and_retrieve(client):
    customer = client.v1.customers.create(params={"name": "ev"}, options={"idempotency_key": "ev-1"})
    client.v1.customers.update(customer.id, params={"name": "ev2"})
    client.v1.products.create(params={"name": "P"})
    events = client.v1.events.list(params={"limit": 100}).data
    assert [e.type for e in events] == ["product.created", "customer.updated", "customer.created"]   # newest first
    assert all(isinstance(e.created, int) for e in events)
    assert [e.type for e in client.v1.events.list(params={"type": "customer.created"}).data] == ["customer.created"]
    assert len(client.v1.events.list(params={"type": "customer.*"}).data) == 2
    both = client.v1.events.list(params={"types": ["customer.created", "product.created"]}).data
    assert {e.type for e in both} == {"customer.created", "product.created"}
    created = events[-1]
    assert created.request.idempotency_key == "ev-1" and created.request.id.startswith("req_")
    assert client.v1.events.retrieve(created.id).data.object.id == customer.id
    now = int(time.time())
    assert len(client.v1.events.list(params={"created": {"gte": now - 5}}).data) == 3
    assert client.v1.events.list(params={"created": {"gt": now + 5}}).data == []
    assert len(client.v1.events.list(params={"created": {"lte": now + 5}}).data) == 3


def test_pagination_cursors(client):
    ids = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(25)]
    newest_first = list(reversed(ids))
    first = client.v1.customers.list(params={"limit": 10})
    assert [c.id for c in first.data] == newest_first[:10] and first.has_more and first.url == "/v1/customers"
    second = client.v1.customers.list(params={"limit": 10, "starting_after": first.data[-1].id})
    assert [c.id for c in second.data] == newest_first[10:20] and second.has_more
    third = client.v1.customers.list(params={"limit": 10, "starting_after": second.data[-1].id})
    assert [c.id for c in third.data] == newest_first[20:] and not third.has_more
    back = client.v1.customers.list(params={"limit": 5, "ending_before": second.data[0].id})
    assert [c.id for c in back.data] == newest_first[5:10] and back.has_more
    assert len(client.v1.customers.list().data) == 10                   # default limit
    assert [c.id for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter()] == newest_first
    collected = [c.id for c in client.v1.customers.list(params={"limit": 7}).auto_paging_iter()]
    assert collected == newest_first


@pytest.mark.parametrize("limit", [0, 101])
def test_limit_bounds(client, limit):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.list(params={"limit": limit})
    assert err.value.param == "limit"


def test_bad_cursor(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.list(params={"starting_after": "cus_missing"})
    assert err.value.param == "starting_after"


def test_unrecognized_url_and_auth(emulator):
    import httpx

    assert httpx.get(f"{emulator.url}/v1/customers").status_code == 401
    live = httpx.get(f"{emulator.url}/v1/customers", headers={"Authorization": "Bearer sk_live_x"})
    assert live.status_code == 401
    missing = httpx.get(f"{emulator.url}/v1/nothing", headers={"Authorization": "Bearer sk_test_x"})
    assert missing.status_code == 404 and "Unrecognized request URL" in missing.json()["error"]["message"]
    ok = httpx.get(f"{emulator.url}/v1/customers", auth=("sk_test_x", ""))
    assert ok.status_code == 200 and ok.headers["Request-Id"].startswith("req_")
