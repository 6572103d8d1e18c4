"""Issue 10, on real processes: consumption is atomic across several `billing-sync ingress`
processes on one PostgreSQL: 200 concurrent requests of 1 against a remaining 50 allow exactly 50,
and a retried idempotency key on another process gets the first answer."""
from __future__ import annotations

import asyncio
import time
import uuid

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
        fleet.start("ingress", "--port", str(port))
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        wait_until_healthy(url)
    return urls


def _entitled(fleet, tenant: str) -> None:
    deadline = time.monotonic() + 20
    while fleet.api.get(f"/v1/tenants/{tenant}/entitlements").status_code != 200:
        assert time.monotonic() < deadline, "entitlements never arrived"
        time.sleep(0.2)


async def _consume_all(urls: list[str], tenant: str, count: int) -> list[dict]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    clients = [httpx.AsyncClient(base_url=url, headers=headers, timeout=30,
                                 limits=httpx.Limits(max_connections=40)) for url in urls]
    try:
        async def one(n: int) -> dict:
            response = await clients[n % len(clients)].post(f"/v1/tenants/{tenant}/usage", json={
                "feature": "api_calls", "quantity": 1, "idempotency_key": f"race-{n}"})
            assert response.status_code == 200, response.text
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
