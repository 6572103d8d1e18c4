"""The read API over a PostgreSQL-backed Context, through Starlette's TestClient."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from billing_sync.handlers.usage import add_usage
from billing_sync.ingress.read_api import routes
from billing_sync.models import EntitlementSnapshot, Tenant
from contexts import Clock, make_context

NOW = datetime(2026, 11, 16, 9, 30, tzinfo=timezone.utc)
AUTH = {"Authorization": "Bearer reader-2"}


class NoStripe:
    """The read API never talks to Stripe; any call would be a bug."""

    def __getattr__(self, name):
        raise AssertionError(f"read API called Stripe: {name}")


@pytest.fixture
def ctx(pg_engine, make_settings):
    settings = make_settings(database_url=str(pg_engine.url), api_tokens="reader-1,reader-2")
    return make_context(settings, pg_engine, NoStripe(), Clock(NOW))


@pytest.fixture
def client(ctx):
    with TestClient(Starlette(routes=routes(ctx))) as test_client:
        yield test_client


def _snapshot(ctx, tenant_id="t1", version=3, **kw):
    with ctx.uow() as uow:
        uow.session.add(Tenant(id=tenant_id))
        uow.session.flush()
        uow.session.add(EntitlementSnapshot(
            tenant_id=tenant_id, version=version, plan=kw.get("plan", "pro"), status=kw.get("status", "active"),
            features=kw.get("features", ["dashboard", "sso"]),
            limits=kw.get("limits", {"api_calls": 500, "projects": 0, "seats": 3}),
            period_end=datetime(2026, 12, 1, tzinfo=timezone.utc), cause="evt_1", updated_at=NOW))
        uow.commit()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic cmVhZGVyLTI="},
                                     {"Authorization": "Bearer"}, {"Authorization": "reader-2"}])
def test_requests_without_a_valid_token_get_401(client, ctx, headers):
    _snapshot(ctx)
    for path in ("/v1/tenants/t1/entitlements", "/v1/tenants/t1/entitlements/sso"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "t1" not in response.text


def test_every_configured_token_is_accepted(client, ctx):
    _snapshot(ctx)
    for token in ("reader-1", "reader-2"):
        assert client.get("/v1/tenants/t1/entitlements", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_snapshot_with_etag_and_304(client, ctx):
    _snapshot(ctx, version=3)
    response = client.get("/v1/tenants/t1/entitlements", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["ETag"] == '"t1-v3"'
    assert response.json() == {
        "tenant_id": "t1", "version": 3, "plan": "pro", "status": "active", "features": ["dashboard", "sso"],
        "limits": {"api_calls": 500, "projects": 0, "seats": 3}, "period_end": "2026-12-01T00:00:00+00:00",
        "updated_at": NOW.isoformat(),
    }
    cached = client.get("/v1/tenants/t1/entitlements", headers={**AUTH, "If-None-Match": '"t1-v3"'})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["ETag"] == '"t1-v3"'
    weak_list = client.get("/v1/tenants/t1/entitlements", headers={**AUTH, "If-None-Match": 'W/"x", W/"t1-v3"'})
    assert weak_list.status_code == 304
    stale = client.get("/v1/tenants/t1/entitlements", headers={**AUTH, "If-None-Match": '"t1-v2"'})
    assert stale.status_code == 200 and stale.json()["version"] == 3


def test_unknown_tenant_is_404_json(client):
    for path in ("/v1/tenants/nobody/entitlements", "/v1/tenants/nobody/entitlements/sso"):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 404
        assert response.json()["error"] == "unknown_tenant"


def test_feature_check_with_usage(client, ctx):
    _snapshot(ctx)
    with ctx.uow() as uow:
        add_usage(uow.session, "t1", "api_calls", 120, NOW)
        add_usage(uow.session, "t1", "api_calls", 30, NOW)
        uow.commit()

    quota = client.get("/v1/tenants/t1/entitlements/api_calls", headers=AUTH).json()
    assert quota == {"tenant_id": "t1", "feature": "api_calls", "enabled": True, "limit": 500, "used": 150,
                     "remaining": 350, "version": 3}

    flag = client.get("/v1/tenants/t1/entitlements/sso", headers=AUTH).json()
    assert (flag["enabled"], flag["limit"], flag["remaining"]) == (True, None, None)

    absent = client.get("/v1/tenants/t1/entitlements/audit_log", headers=AUTH).json()
    assert absent["enabled"] is False

    zero = client.get("/v1/tenants/t1/entitlements/projects", headers=AUTH).json()
    assert (zero["enabled"], zero["limit"], zero["remaining"]) == (False, 0, 0)


def test_remaining_never_goes_negative(client, ctx):
    _snapshot(ctx, limits={"api_calls": 100})
    with ctx.uow() as uow:
        add_usage(uow.session, "t1", "api_calls", 130, NOW)
        uow.commit()
    body = client.get("/v1/tenants/t1/entitlements/api_calls", headers=AUTH).json()
    assert (body["used"], body["remaining"], body["enabled"]) == (130, 0, True)
