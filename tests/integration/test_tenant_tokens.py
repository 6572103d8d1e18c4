"""Tenant tokens for browsers and `POST …/sync` (issue 9): a token opens only its own tenant's
billing, invoices and entitlements, and nothing after it expires; sync is rate-limited."""
from __future__ import annotations

from datetime import UTC, datetime

import jwt
import pytest
from starlette.testclient import TestClient

from billing_sync.ingress.app import create_app
from billing_sync.models import EntitlementSnapshot, Tenant

from contexts import Clock, NoStripe, make_bus

NOW = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)
SERVICE = {"Authorization": "Bearer svc"}


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
def bus(pg_engine, make_settings, clock):
    settings = make_settings(database_url=str(pg_engine.url), api_tokens="svc", cors_origins="https://app.example",
                             browser_token_ttl_s=600)
    bus = make_bus(settings, pg_engine, NoStripe(), clock)
    with bus.uow_factory() as uow:
        for tenant in ("t1", "t2"):
            uow.session.add(Tenant(id=tenant))
            uow.session.flush()
            uow.session.add(EntitlementSnapshot(tenant_id=tenant, version=1, plan="pro", status="active",
                                                features=["sso"], limits={}, updated_at=NOW))
        uow.commit()
    return bus


@pytest.fixture
def client(bus):
    with TestClient(create_app(bus, enqueue=lambda message: None)) as test_client:
        yield test_client


def _token(client, tenant="t1") -> dict:
    response = client.post(f"/v1/tenants/{tenant}/tokens", headers=SERVICE)
    assert response.status_code == 201
    return response.json()


def test_a_tenant_token_reads_its_own_tenant_only(client):
    issued = _token(client)
    assert issued["expires_at"] == "2026-11-16T09:40:00+00:00"
    bearer = {"Authorization": f"Bearer {issued['token']}"}
    for path in ("/v1/tenants/t1/billing", "/v1/tenants/t1/invoices", "/v1/tenants/t1/entitlements",
                 "/v1/tenants/t1/entitlements/sso"):
        assert client.get(path, headers=bearer).status_code == 200, path
    # A stolen token is useless for another tenant, and for what only services may do.
    for path in ("/v1/tenants/t2/billing", "/v1/tenants/t2/invoices", "/v1/tenants/t2/entitlements",
                 "/v1/tenants/t2/entitlements/sso", "/v1/plans"):
        response = client.get(path, headers=bearer)
        assert (response.status_code, response.json()) == (403, {"error": "forbidden"}), path
    for path in ("/v1/tenants/t1/tokens", "/v1/tenants/t1/sync", "/v1/tenants/t2/tokens"):
        assert client.post(path, headers=bearer).status_code == 403, path


def test_a_token_is_useless_after_expiry_and_when_altered(client, clock):
    token = _token(client)["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    clock.advance(seconds=599)
    assert client.get("/v1/tenants/t1/billing", headers=bearer).status_code == 200
    clock.advance(seconds=1)
    assert client.get("/v1/tenants/t1/billing", headers=bearer).status_code == 401

    claims = jwt.decode(token, options={"verify_signature": False})
    forged = [
        jwt.encode({**claims, "sub": "t2"}, "another-deployments-key-of-32-bytes", algorithm="HS256"),  # another key
        jwt.encode({**claims, "sub": "t2", "exp": claims["exp"] + 10**6}, None, algorithm="none"),  # alg none
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),                       # altered signature
    ]
    clock.advance(seconds=-10)
    for bad in forged:
        assert client.get("/v1/tenants/t2/billing", headers={"Authorization": f"Bearer {bad}"}).status_code == 401


def test_tokens_are_issued_to_services_only_and_for_valid_tenant_ids(client):
    assert client.post("/v1/tenants/t1/tokens").status_code == 401
    assert client.post("/v1/tenants/t1/tokens", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/v1/tenants/bad%00id/tokens", headers=SERVICE).status_code == 400


def test_cors_allows_the_configured_origin_only(client):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    ok = client.options("/v1/tenants/t1/billing", headers=preflight)
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
    other = client.options("/v1/tenants/t1/billing", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_sync_is_rate_limited_per_tenant(pg_engine, make_settings, clock):
    from fakes import FakeGateway

    settings = make_settings(database_url=str(pg_engine.url), api_tokens="svc", tenant_sync_per_minute=1)
    gw = FakeGateway(clock)
    bus = make_bus(settings, pg_engine, gw, clock)
    prices = gw.seed_catalog(bus.catalog)
    for tenant in ("s1", "s2"):
        customer = gw.add_customer(tenant)
        gw.add_subscription(customer["id"], prices["pro"]["id"], quantity=2)
    with TestClient(create_app(bus, enqueue=lambda message: None)) as client:
        answers = [client.post("/v1/tenants/s1/sync", headers=SERVICE) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]  # a burst of 3, then wait
        assert int(answers[-1].headers["Retry-After"]) >= 1
        body = answers[0].json()
        assert body["entitlements"]["plan"] == "pro" and body["billing"]["subscription"]["seats"] == 2
        assert body["billing"]["payment_method"]["status"] in ("valid", "missing")
        assert client.post("/v1/tenants/s2/sync", headers=SERVICE).status_code == 200  # its own budget
        assert client.post("/v1/tenants/nobody/sync", headers=SERVICE).status_code == 404
        clock.advance(seconds=60)  # one call's worth back (1 a minute)
        assert client.post("/v1/tenants/s1/sync", headers=SERVICE).status_code == 200
        assert client.post("/v1/tenants/s1/sync", headers=SERVICE).status_code == 429


def test_the_sync_budget_is_shared_by_every_ingress(pg_engine, make_settings, clock):
    """Two apps (two ingresses) on one database draw from one budget per tenant."""
    from fakes import FakeGateway

    settings = make_settings(database_url=str(pg_engine.url), api_tokens="svc", tenant_sync_per_minute=1)
    gw = FakeGateway(clock)
    buses = [make_bus(settings, pg_engine, gw, clock) for _ in range(2)]
    gw.add_customer("shared")
    with TestClient(create_app(buses[0], enqueue=lambda m: None)) as one, \
            TestClient(create_app(buses[1], enqueue=lambda m: None)) as two:
        statuses = [(one if n % 2 else two).post("/v1/tenants/shared/sync", headers=SERVICE).status_code
                    for n in range(6)]
    assert statuses == [200, 200, 200, 429, 429, 429]
