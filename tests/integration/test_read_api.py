"""The read API over a PostgreSQL-backed bus, through Starlette's TestClient."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from billing_sync.ingress.read_api import routes
from billing_sync.models import EntitlementSnapshot, Tenant

from contexts import Clock, make_bus

NOW = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)
AUTH = {"Authorization": "Bearer reader-2"}


class NoStripe:
    """The read API never talks to Stripe; any call would be a bug."""

    def __getattr__(self, name):
        raise AssertionError(f"read API called Stripe: {name}")


@pytest.fixture
def bus(pg_engine, make_settings):
    settings = make_settings(database_url=str(pg_engine.url), api_tokens="reader-1,reader-2")
    return make_bus(settings, pg_engine, NoStripe(), Clock(NOW))


@pytest.fixture
def client(bus):
    with TestClient(Starlette(routes=routes(bus))) as test_client:
        yield test_client


def _snapshot(bus, tenant_id="t1", version=3, **kw):
    with bus.uow_factory() as uow:
        uow.session.add(Tenant(id=tenant_id))
        uow.session.flush()
        uow.session.add(EntitlementSnapshot(
            tenant_id=tenant_id, version=version, plan=kw.get("plan", "pro"), status=kw.get("status", "active"),
            features=kw.get("features", ["dashboard", "sso"]),
            limits=kw.get("limits", {"api_calls": 500, "projects": 0, "seats": 3}),
            period_end=datetime(2026, 12, 1, tzinfo=UTC), cause="evt_1", updated_at=NOW))
        uow.commit()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic cmVhZGVyLTI="},
                                     {"Authorization": "Bearer"}, {"Authorization": "reader-2"}])
def test_requests_without_a_valid_token_get_401(client, bus, headers):
    _snapshot(bus)
    for path in ("/v1/tenants/t1/entitlements", "/v1/tenants/t1/entitlements/sso"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "t1" not in response.text


def test_every_configured_token_is_accepted(client, bus):
    _snapshot(bus)
    for token in ("reader-1", "reader-2"):
        answer = client.get("/v1/tenants/t1/entitlements", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200


def test_snapshot_with_etag_and_304(client, bus):
    _snapshot(bus, version=3)
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


def test_feature_check_with_usage(client, bus):
    _snapshot(bus)
    with bus.uow_factory() as uow:
        uow.quotas.add_second("t1", "api_calls", NOW, 120)
        uow.quotas.add_second("t1", "api_calls", NOW, 30)
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


def test_remaining_never_goes_negative(client, bus):
    _snapshot(bus, limits={"api_calls": 100})
    with bus.uow_factory() as uow:
        uow.quotas.add_second("t1", "api_calls", NOW, 130)
        uow.commit()
    body = client.get("/v1/tenants/t1/entitlements/api_calls", headers=AUTH).json()
    assert (body["used"], body["remaining"], body["enabled"]) == (130, 0, True)


# Tenant ids in the path that break the tenant-id rule (contract/ids.py), percent-encoded as sent.
BAD_TENANT_IDS = [
    ("NUL", "t%001"),
    ("non-Latin-1", "%E7%A7%9F%E6%88%B7"),
    ("Latin-1 but not ASCII", "%C3%A9t%C3%A9"),
    ("a lone surrogate's UTF-8", "t%ED%A0%801"),
    ("invalid UTF-8", "t%FF1"),
    ("over 128 characters", "t" * 129),
    ("a space", "t%201"),
    ("a newline", "t%0A1"),
    ("a quote", "t%221"),
    ("starting with a dash", "-t1"),
    ("starting with a dot", ".t1"),
]


@pytest.fixture
def server_errors_as_responses(bus):
    """A client that turns an unhandled exception into the 500 a real server would send."""
    with TestClient(Starlette(routes=routes(bus)), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("name, tenant_id", BAD_TENANT_IDS, ids=[case[0] for case in BAD_TENANT_IDS])
def test_a_tenant_id_that_breaks_the_rule_gets_400_with_a_clear_error(server_errors_as_responses, bus, name,
                                                                     tenant_id):
    _snapshot(bus)
    for path in (f"/v1/tenants/{tenant_id}/entitlements", f"/v1/tenants/{tenant_id}/entitlements/sso"):
        response = server_errors_as_responses.get(path, headers=AUTH)
        assert response.status_code == 400, (path, response.status_code, response.text)
        body = response.json()
        assert body["error"] == "invalid_tenant_id"
        assert "ASCII letters, digits" in body["detail"]
        # without a token it is still 401 first: the rule is no oracle for unauthenticated callers
        assert server_errors_as_responses.get(path).status_code == 401


def test_a_stored_tenant_id_outside_the_rule_still_gets_an_ascii_etag():
    """Rows written before the rule existed may hold any id: the ETag header must stay encodable."""
    from billing_sync.ingress.read_api import etag_for

    for tenant_id in ("租户", "t\x001", "t\ud8001", 'a"b', "a b", "t1"):
        etag = etag_for(tenant_id, 3)
        etag.encode("ascii")
        assert etag.startswith('"') and etag.endswith('-v3"') and '"' not in etag[1:-1]
        assert all(0x21 <= ord(ch) <= 0x7E for ch in etag)
    assert etag_for("t1", 3) == '"t1-v3"'  # the documented form for every id that follows the rule
    assert etag_for("a.b:c-d_e", 7) == '"a.b:c-d_e-v7"'
    assert etag_for("租户", 1) != etag_for("租", 1)


@pytest.mark.parametrize("feature", ["a%00b", "%ED%A0%80", "x" * 300, "%E7%A7%9F"])
def test_any_feature_name_gets_an_answer_not_a_500(server_errors_as_responses, bus, feature):
    _snapshot(bus)
    response = server_errors_as_responses.get(f"/v1/tenants/t1/entitlements/{feature}", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["enabled"], body["limit"], body["used"], body["remaining"]) == (False, None, 0, None)
