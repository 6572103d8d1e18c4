"""Issue 10, on real processes: consumption is atomic across several `billing-sync ingress`
processes on one PostgreSQL: 200 concurrent requests of 1 against a remaining 50 allow exactly 50,
and a retried idempotency key on another process gets the first answer. The period is Stripe's:
it stays across a plan change, a renewal starts a new one, and what is consumed while the
renewal's webhooks are held back counts in the new period."""
from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from e2e_fleet import TOKEN, start_fleet
from fleet_processes import free_port, wait_until_healthy

LIMIT = 50_000  # the starter plan's api_calls (config/catalog.yaml)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, pg_url, redis_url):
    """The consumption path does not touch the broker: one fleet (Redis) is enough."""
    fleet = start_fleet(tmp_path_factory, redis_url, pg_url, f"e2e-usage-{uuid.uuid4().hex[:6]}")
    yield fleet
    fleet.close()
    fleet.emulator.stop()


def _more_ingresses(fleet, count: int) -> list[str]:
    urls = []
    for _ in range(count):
        port = free_port()
        fleet.start("ingress", "--port", str(port), name=f"ingress-{port}")  # `fleet.stop("ingress")` stays the first
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        wait_until_healthy(url)
    return urls


def _entitled(fleet, tenant: str) -> None:
    deadline = time.monotonic() + 60   # a loaded machine's worker may take a while
    while fleet.api.get(f"/v1/tenants/{tenant}/entitlements").status_code != 200:
        assert time.monotonic() < deadline, "entitlements never arrived"
        time.sleep(0.2)


async def _consume_all(urls: list[str], tenant: str, count: int) -> list[dict]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    clients = [httpx.AsyncClient(base_url=url, headers=headers, timeout=30,
                                 limits=httpx.Limits(max_connections=40)) for url in urls]
    try:
        async def one(n: int) -> dict:
            # A 503 (the shared test database out of connection slots) or a dropped connection
            # (a loaded machine) is retried with the same key, as the README asks of clients: a
            # retry must not count twice either.
            response = None
            for _ in range(50):
                try:
                    response = await clients[n % len(clients)].post(f"/v1/tenants/{tenant}/usage", json={
                        "feature": "api_calls", "quantity": 1, "idempotency_key": f"race-{n}"})
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
                    continue
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.2)
            assert response is not None and response.status_code == 200, response and response.text
            return response.json()

        return await asyncio.gather(*(one(n) for n in range(count)))
    finally:
        for client in clients:
            await client.aclose()


def test_no_overshoot_across_ingress_processes(fleet):
    tenant = fleet.new_tenant("quota")
    fleet.staff_signup(tenant, plan="starter")
    _entitled(fleet, tenant)
    urls = [fleet.ingress_url, *_more_ingresses(fleet, 2)]
    filled = fleet.api.post(f"/v1/tenants/{tenant}/usage", json={
        "feature": "api_calls", "quantity": LIMIT - 50, "idempotency_key": "fill", "mode": "soft"}).json()
    assert (filled["allowed"], filled["remaining"]) == (True, 50)

    answers = asyncio.run(_consume_all(urls, tenant, 200))
    assert sum(answer["allowed"] for answer in answers) == 50
    assert max(answer["used"] for answer in answers) == LIMIT

    first = next(answer for answer in answers if answer["allowed"])
    key = f"race-{answers.index(first)}"
    for url in urls:   # the same key on every process: the first answer, nothing recorded
        again = httpx.post(f"{url}/v1/tenants/{tenant}/usage", headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"feature": "api_calls", "quantity": 1, "idempotency_key": key}).json()
        assert again == first
    check = fleet.api.get(f"/v1/tenants/{tenant}/entitlements/api_calls").json()
    assert (check["used"], check["remaining"]) == (LIMIT, 0)


def _consume(url: str, tenant: str, key: str, quantity: int, at: int) -> dict:
    """A hard consumption at `at` (Unix seconds on the tenant's test clock, not the wall's)."""
    response = httpx.post(f"{url}/v1/tenants/{tenant}/usage", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=30, json={"feature": "api_calls", "quantity": quantity, "idempotency_key": key,
                                            "timestamp": at})
    assert response.status_code == 200, response.text
    return response.json()


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return found


def test_the_period_follows_a_plan_change_and_a_renewal_whose_webhooks_are_held_back(fleet):
    tenant = fleet.new_tenant("period")
    customer, sub = fleet.staff_signup(tenant, plan="starter", clock=True)
    _entitled(fleet, tenant)
    usage = _more_ingresses(fleet, 1)[0]   # stays up while the webhooks' ingress is down
    item = sub["items"].data[0]
    start, end = item.current_period_start, item.current_period_end

    first = _consume(usage, tenant, "p-1", 40_000, start + 60)
    assert (first["allowed"], first["period_start"], first["period_end"]) == (True, _iso(start), _iso(end))
    fleet.stripe.v1.subscriptions.update(sub.id, params={   # support staff upgrade: same period
        "items": [{"id": item.id, "price": fleet.price("pro")}], "proration_behavior": "none"})
    _until(lambda: fleet.api.get(f"/v1/tenants/{tenant}/entitlements").json()["plan"] == "pro", "never pro")
    upgraded = _consume(usage, tenant, "p-2", 20_000, start + 120)   # over starter's 50,000: pro's limit
    assert (upgraded["allowed"], upgraded["used"], upgraded["limit"]) == (True, 60_000, 500_000), upgraded

    fleet.stop("ingress")   # Stripe's webhooks now fail and are retried
    try:
        fleet.stripe.v1.test_helpers.test_clocks.advance(customer.test_clock, params={"frozen_time": end + 3600})
        renewed = _until(lambda: (s := fleet.stripe.v1.subscriptions.retrieve(sub.id))["items"].data[0]
                         .current_period_start == end and s, "Stripe never renewed")
        next_end = renewed["items"].data[0].current_period_end
        held = _consume(usage, tenant, "r-1", 7, end + 1800)   # our copy still shows the old period
        assert (held["allowed"], held["used"], held["period_start"], held["period_end"]) == \
            (True, 7, _iso(end), None), held
    finally:
        fleet.start("ingress", "--port", str(fleet.port))
        fleet.wait_healthy()

    # The renewal's webhooks arrive: the copy shows the new period, and the 7 are in it.
    _until(lambda: fleet.api.get(f"/v1/tenants/{tenant}/entitlements/api_calls").json()["used"] == 7,
           "the read API never showed the new period")
    after = _consume(usage, tenant, "r-2", 1, end + 1900)
    assert (after["used"], after["period_start"], after["period_end"]) == (8, _iso(end), _iso(next_end)), after
    assert _consume(usage, tenant, "p-1", 40_000, start + 60) == first   # a key is a key, across periods
