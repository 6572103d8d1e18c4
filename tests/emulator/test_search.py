"""Search queries on `created`: Stripe's numeric comparisons `>`, `<`, `>=`, `<=` and exact `:`."""
from __future__ import annotations

import pytest
import stripe

T0 = 1_767_225_600


@pytest.fixture
def customers(client):
    """Three customers created at T0, T0+100 and T0+200 (each on a test clock frozen then)."""
    made = []
    for offset in (0, 100, 200):
        clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0 + offset})
        made.append(client.v1.customers.create(params={"test_clock": clock.id, "metadata": {"n": str(offset)}}))
    assert [c.created for c in made] == [T0, T0 + 100, T0 + 200]
    return made


def found(client, query: str) -> list[str]:
    return sorted(c.metadata["n"] for c in client.v1.customers.search(params={"query": query}).data)


@pytest.mark.parametrize("query,expected", [
    (f"created>{T0}", ["100", "200"]),
    (f"created>={T0 + 100}", ["100", "200"]),
    (f"created<{T0 + 100}", ["0"]),
    (f"created<={T0 + 100}", ["0", "100"]),
    (f"created:{T0 + 200}", ["200"]),
    (f"created>'{T0}'", ["100", "200"]),   # a quoted number works as well
    (f"created > {T0} AND created < {T0 + 200}", ["100"]),
    (f"-created>{T0}", ["0"]),
    (f"created<{T0 + 1} OR metadata['n']:'200'", ["0", "200"]),
])
def test_created_comparisons(client, customers, query, expected):
    assert found(client, query) == expected


def test_created_comparisons_on_subscriptions_products_and_prices(client):
    product = client.v1.products.create(params={"name": "p"})
    client.v1.prices.create(params={"product": product.id, "unit_amount": 1, "currency": "usd"})
    assert [p.id for p in client.v1.products.search(params={"query": "created>0"}).data] == [product.id]
    assert len(client.v1.prices.search(params={"query": "created>=0"}).data) == 1
    assert client.v1.subscriptions.search(params={"query": "created<0"}).data == []


@pytest.mark.parametrize("query", ["email>'a'", "created>'soon'", "created>", "created>=>1"])
def test_malformed_comparisons_are_a_400(client, query):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.search(params={"query": query})
    assert err.value.http_status == 400 and err.value.param == "query"
