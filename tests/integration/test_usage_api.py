"""Atomic consumption, reservations and threshold notices on PostgreSQL, through the usage
endpoints (Starlette's TestClient); the fleet-wide race is tests/e2e/test_usage_fleet.py."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from starlette.applications import Starlette
from starlette.testclient import TestClient

from billing_sync.handlers.usage import current_usage
from billing_sync.ingress.usage_api import routes
from billing_sync.models import EntitlementSnapshot, OutboxMessage, Subscription, Tenant, UsageCounter
from billing_sync.models.quota import Quotas

from contexts import Clock, NoStripe, make_bus

NOW = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)
PERIOD = (datetime(2026, 11, 2, 12, tzinfo=UTC), datetime(2026, 12, 2, 12, tzinfo=UTC))
AUTH = {"Authorization": "Bearer svc"}


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture(params=["one statement", "general path"])
def bus(request, pg_engine, make_settings, clock, monkeypatch):
    """Every scenario runs through both ways of consuming on PostgreSQL, which keep the same rules
    twice (models/quota_statement.py in SQL, handlers/quota.record in Python): the same answers,
    counters and notices from each."""
    if request.param == "general path":
        monkeypatch.setattr(Quotas, "consume_at_once", lambda *_args, **_kwargs: None)
    settings = make_settings(database_url=str(pg_engine.url), api_tokens="svc")
    return make_bus(settings, pg_engine, NoStripe(), clock)


@pytest.fixture
def client(bus):
    with TestClient(Starlette(routes=routes(bus))) as test_client:
        yield test_client


def tenant(bus, tenant_id="t1", limit=50, period=PERIOD, sub_id="sub_1"):
    with bus.uow_factory() as uow:
        uow.session.add(Tenant(id=tenant_id))
        uow.session.flush()
        uow.session.add(EntitlementSnapshot(tenant_id=tenant_id, version=1, plan="pro", status="active",
                                            features=["sso"], limits={"api_calls": limit}, cause="t"))
        uow.session.add(Subscription(id=sub_id, tenant_id=tenant_id, status="active", current_period_start=period[0],
                                     current_period_end=period[1], stripe_created=period[0]))
        uow.commit()


def set_limit(bus, tenant_id, limit):
    with bus.uow_factory() as uow:
        uow.snapshots.get(tenant_id).limits = {"api_calls": limit}
        uow.commit()


def renew(bus, sub_id, period):
    with bus.uow_factory() as uow:
        sub = uow.session.get(Subscription, sub_id)
        sub.current_period_start, sub.current_period_end = period
        uow.commit()


def consume(client, key, quantity=1, tenant_id="t1", **extra):
    response = client.post(f"/v1/tenants/{tenant_id}/usage", headers=AUTH,
                           json={"feature": "api_calls", "quantity": quantity, "idempotency_key": key, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def seconds_total(bus, tenant_id="t1"):
    with bus.uow_factory() as uow:
        return uow.session.execute(select(func.coalesce(func.sum(UsageCounter.used), 0)).where(
            UsageCounter.tenant_id == tenant_id)).scalar_one()


def notices(bus):
    with bus.uow_factory() as uow:
        return [(row.data["threshold"], row.data["used"], row.data["period_start"]) for row in uow.session.execute(
            select(OutboxMessage).where(OutboxMessage.type == "billing.usage.threshold_reached")
            .order_by(OutboxMessage.id)).scalars()]


def test_hard_refuses_without_recording_and_soft_records(client, bus):
    tenant(bus, limit=10)
    assert consume(client, "a", 8) == {"allowed": True, "used": 8, "limit": 10, "remaining": 2,
                                       "period_start": PERIOD[0].isoformat(), "period_end": PERIOD[1].isoformat()}
    refused = consume(client, "b", 3)
    assert (refused["allowed"], refused["used"], refused["remaining"]) == (False, 8, 2)
    assert seconds_total(bus) == 8
    soft = consume(client, "c", 3, mode="soft")
    assert (soft["allowed"], soft["used"], soft["remaining"]) == (False, 11, 0)
    assert seconds_total(bus) == 11


def test_a_repeated_key_returns_the_first_answer_and_records_nothing(client, bus):
    tenant(bus, limit=10)
    first = consume(client, "same", 4)
    consume(client, "other", 6)
    assert consume(client, "same", 4) == first
    assert consume(client, "same", 9, mode="soft") == first
    assert seconds_total(bus) == 10


def test_concurrent_requests_never_overshoot(client, bus):
    tenant(bus, limit=50)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda n: consume(client, f"k{n}"), range(120)))
    assert sum(a["allowed"] for a in answers) == 50
    assert seconds_total(bus) == 50


def test_thresholds_once_per_period(client, bus, clock):
    tenant(bus, limit=10)
    for n in range(12):
        consume(client, f"a{n}", mode="soft")
    assert notices(bus) == [(80, 8, PERIOD[0].isoformat()), (100, 10, PERIOD[0].isoformat())]
    set_limit(bus, "t1", 14)   # an upgrade in the same period: crossing 80 % again sends nothing
    consume(client, "b", 1)
    assert len(notices(bus)) == 2
    nxt = (PERIOD[1], PERIOD[1] + timedelta(days=30))
    renew(bus, "sub_1", nxt)
    clock.current = PERIOD[1] + timedelta(hours=1)
    consume(client, "c", 12)
    assert notices(bus)[2:] == [(80, 12, nxt[0].isoformat())]


def test_a_renewal_starts_a_new_period_and_a_late_renewal_keeps_its_usage(client, bus, clock):
    tenant(bus, limit=10)
    consume(client, "a", 10)
    clock.current = PERIOD[1] + timedelta(minutes=5)   # renewed in Stripe; the webhook is late
    late = consume(client, "b", 3)
    assert (late["allowed"], late["used"], late["period_start"], late["period_end"]) == \
        (True, 3, PERIOD[1].isoformat(), None)
    nxt = (PERIOD[1], PERIOD[1] + timedelta(days=30))
    renew(bus, "sub_1", nxt)
    after = consume(client, "c", 2)
    assert (after["used"], after["period_end"]) == (5, nxt[1].isoformat())
    with bus.uow_factory() as uow:   # the read API's sum agrees with the counter
        assert current_usage(uow, "t1", "api_calls", clock()) == 5


def test_usage_moves_with_the_tenant_across_a_plan_change(client, bus):
    tenant(bus, limit=10)
    consume(client, "a", 9)
    set_limit(bus, "t1", 100)   # upgraded in the same period
    answer = consume(client, "b", 5)
    assert (answer["allowed"], answer["used"], answer["limit"], answer["remaining"]) == (True, 14, 100, 86)
    set_limit(bus, "t1", 10)    # downgraded: what was used still counts
    assert consume(client, "c", 1)["allowed"] is False


def test_usage_recorded_on_the_bus_counts_in_the_same_counter(client, bus):
    from billing_sync.handlers.quota import feature_limit, record
    tenant(bus, limit=10)
    consume(client, "a", 6)
    with bus.uow_factory() as uow:   # what handlers/commands.usage_recorded does in its transaction
        record(uow, "t1", "api_calls", 3, NOW, feature_limit(uow, "t1", "api_calls", required=False),
               hard=False, now=NOW)
        uow.commit()
    assert consume(client, "b", 2)["allowed"] is False
    assert consume(client, "c", 1)["used"] == 10


def reserve(client, quantity, ttl_s=60):
    response = client.post("/v1/tenants/t1/usage/reservations", headers=AUTH,
                           json={"feature": "api_calls", "quantity": quantity, "ttl_s": ttl_s})
    assert response.status_code == 200, response.text
    return response.json()


def test_reservations_commit_release_and_expire(client, bus, clock):
    tenant(bus, limit=10)
    held = reserve(client, 6)
    assert held["reservation_id"].startswith("rsv_") and held["remaining"] == 4
    assert consume(client, "a", 5)["allowed"] is False          # the reservation counts
    assert reserve(client, 5)["reservation_id"] is None          # and so for another reservation
    committed = client.post(f"/v1/tenants/t1/usage/reservations/{held['reservation_id']}/commit", headers=AUTH,
                            json={"quantity": 2}).json()
    assert (committed["committed"], committed["used"], committed["remaining"]) == (2, 2, 8)
    again = client.post(f"/v1/tenants/t1/usage/reservations/{held['reservation_id']}/commit", headers=AUTH, json={})
    assert again.status_code == 409 and again.json()["error"] == "reservation_closed"

    second = reserve(client, 8)
    released = client.post(f"/v1/tenants/t1/usage/reservations/{second['reservation_id']}/release", headers=AUTH)
    assert released.status_code == 200 and released.json()["released"] == 8
    assert consume(client, "b", 8)["remaining"] == 0

    set_limit(bus, "t1", 20)
    third = reserve(client, 10, ttl_s=30)
    clock.advance(seconds=31)
    assert consume(client, "c", 10)["allowed"] is True           # the expired hold gave way
    late = client.post(f"/v1/tenants/t1/usage/reservations/{third['reservation_id']}/commit", headers=AUTH, json={})
    assert late.status_code == 409
    assert seconds_total(bus) == 20


def test_the_scheduler_job_releases_expired_reservations(client, bus, clock):
    from billing_sync.handlers.quota import release_expired_job
    tenant(bus, limit=10)
    reserve(client, 7, ttl_s=5)
    clock.advance(seconds=6)
    assert bus.call(release_expired_job) == {"released": 1}
    assert bus.call(release_expired_job) == {"released": 0}
    assert consume(client, "a", 1)["remaining"] == 9


@pytest.mark.parametrize("body, field", [
    ({"quantity": 1, "idempotency_key": "k"}, "feature"),
    ({"feature": "api_calls", "quantity": 0, "idempotency_key": "k"}, "quantity"),
    ({"feature": "api_calls", "quantity": "1", "idempotency_key": "k"}, "quantity"),
    ({"feature": "api_calls", "quantity": 1}, "idempotency_key"),
    ({"feature": "api_calls", "quantity": 1, "idempotency_key": "has space"}, "idempotency_key"),
    ({"feature": "api_calls", "quantity": 1, "idempotency_key": "k", "mode": "maybe"}, "mode"),
    ({"feature": "api calls", "quantity": 1, "idempotency_key": "k"}, "feature"),
    ({"feature": "api_calls", "quantity": 1, "idempotency_key": "k", "extra": 1}, "extra"),
])
def test_bad_input_is_400_naming_the_field(client, bus, body, field):
    tenant(bus)
    response = client.post("/v1/tenants/t1/usage", headers=AUTH, json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request" and response.json()["detail"].startswith(field)
    assert seconds_total(bus) == 0


def test_auth_tenant_and_reservation_edges(client, bus):
    tenant(bus)
    body = {"feature": "api_calls", "quantity": 1, "idempotency_key": "k"}
    assert client.post("/v1/tenants/t1/usage", json=body).status_code == 401
    assert client.post("/v1/tenants/bad%00id/usage", headers=AUTH, json=body).status_code == 400
    assert client.post("/v1/tenants/nobody/usage", headers=AUTH, json=body).status_code == 404
    assert client.post("/v1/tenants/t1/usage/reservations/rsv_x/commit", headers=AUTH, json={}).status_code == 404
    unknown = "rsv_" + "0" * 32
    assert client.post(f"/v1/tenants/t1/usage/reservations/{unknown}/release", headers=AUTH).status_code == 404


def test_the_same_statements_work_on_sqlite(sqlite_engine, make_settings, clock):
    """`up` and the demo run on SQLite: the conditional UPDATE, the upserts and the reservations."""
    bus = make_bus(make_settings(database_url=str(sqlite_engine.url), api_tokens="svc"), sqlite_engine,
                   NoStripe(), clock)
    tenant(bus, limit=10)
    with TestClient(Starlette(routes=routes(bus))) as sqlite_client:
        assert consume(sqlite_client, "a", 7)["remaining"] == 3
        assert consume(sqlite_client, "a", 7)["used"] == 7
        assert consume(sqlite_client, "b", 4)["allowed"] is False
        held = reserve(sqlite_client, 3)
        done = sqlite_client.post(f"/v1/tenants/t1/usage/reservations/{held['reservation_id']}/commit",
                                  headers=AUTH, json={}).json()
        assert (done["used"], done["remaining"]) == (10, 0)
    assert notices(bus) == [(80, 10, PERIOD[0].isoformat()), (100, 10, PERIOD[0].isoformat())]  # both crossed at once
    assert seconds_total(bus) == 10


def test_one_statement_settles_a_consumption_once_the_period_has_its_counter(pg_engine, make_settings, clock):
    """The usual consumption is one round trip (models/quota_statement.py); its repeat too."""
    from sqlalchemy import event
    bus = make_bus(make_settings(database_url=str(pg_engine.url), api_tokens="svc"), pg_engine, NoStripe(), clock)
    tenant(bus, limit=10)
    statements: list[str] = []
    event.listen(pg_engine, "before_cursor_execute", lambda _c, _cur, sql, *_rest: statements.append(sql))
    with TestClient(Starlette(routes=routes(bus))) as test_client:
        consume(test_client, "first", 1)   # the general path builds the period's counter
        statements.clear()
        assert consume(test_client, "a", 7)["allowed"] is True       # crosses 80 %: a notice, same statement
        assert consume(test_client, "b", 5)["allowed"] is False      # a refusal
        assert consume(test_client, "a", 7)["used"] == 8             # a repeat: the first answer
    consumptions = [sql for sql in statements if "FROM pg_" not in sql and sql.strip().lower() != "select 1"]
    assert len(consumptions) == 3, consumptions
    assert notices(bus) == [(80, 8, PERIOD[0].isoformat())]


def test_the_statement_writes_moments_as_python_does(pg_engine):
    """Answers and notices carry timestamps the SQL formats: the same text as `isoformat()`."""
    from billing_sync.models.quota_statement import iso
    moments = [datetime(2026, 11, 2, 12, tzinfo=UTC), datetime(2026, 11, 2, 12, 0, 0, 120, tzinfo=UTC),
               datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)]
    with pg_engine.connect() as conn:
        for moment in moments:
            written = conn.execute(text(f"SELECT {iso('CAST(:m AS timestamptz)')}"), {"m": moment}).scalar_one()
            assert written == moment.isoformat()


def test_a_tenant_token_consumes_and_reserves_for_its_own_tenant_only(client, bus, clock):
    """Issue 10: the usage endpoints take a service token or a tenant token (POST …/tokens)."""
    from billing_sync.ingress import tenant_tokens
    tenant(bus, limit=10)
    tenant(bus, "t2", limit=10, sub_id="sub_2")
    token, _ = tenant_tokens.issue(tenant_tokens.signing_key(bus.settings), "t1", clock(), 600)
    own = {"Authorization": f"Bearer {token}"}
    body = {"feature": "api_calls", "quantity": 2, "idempotency_key": "browser-1"}
    assert client.post("/v1/tenants/t1/usage", headers=own, json=body).json()["used"] == 2
    held = client.post("/v1/tenants/t1/usage/reservations", headers=own,
                       json={"feature": "api_calls", "quantity": 3, "ttl_s": 60}).json()
    reservation = f"/v1/tenants/t1/usage/reservations/{held['reservation_id']}"
    assert client.post(f"{reservation}/commit", headers=own, json={}).json()["used"] == 5
    second = client.post("/v1/tenants/t1/usage/reservations", headers=own,
                         json={"feature": "api_calls", "quantity": 1, "ttl_s": 60}).json()
    assert client.post(f"/v1/tenants/t1/usage/reservations/{second['reservation_id']}/release",
                       headers=own).json()["released"] == 1

    # Another tenant's paths are 403, before anything is read or recorded.
    for path, payload in (("/v1/tenants/t2/usage", body),
                          ("/v1/tenants/t2/usage/reservations", {"feature": "api_calls", "quantity": 1, "ttl_s": 9}),
                          (f"/v1/tenants/t2/usage/reservations/{held['reservation_id']}/commit", {}),
                          (f"/v1/tenants/t2/usage/reservations/{held['reservation_id']}/release", {})):
        response = client.post(path, headers=own, json=payload)
        assert (response.status_code, response.json()) == (403, {"error": "forbidden"}), path
    assert seconds_total(bus, "t2") == 0

    clock.advance(seconds=601)   # expired: neither kind of token any more
    assert client.post("/v1/tenants/t1/usage", headers=own, json={**body, "idempotency_key": "late"}).status_code == 401
    assert seconds_total(bus) == 5


def test_idempotency_answers_and_closed_reservations_are_pruned_after_the_horizon(client, bus, clock, monkeypatch):
    """BILLING_USAGE_KEYS_KEPT_S: a key within it is a repeat, after it (pruned, in batches) a new
    consumption; a held reservation is never pruned, a closed one that long after its expiry is."""
    from billing_sync.handlers import quota
    from billing_sync.models import UsageRequest, UsageReservation
    monkeypatch.setattr(quota, "PRUNE_BATCH", 2)
    tenant(bus, limit=100)
    kept = bus.settings.usage_keys_kept_s
    for n in range(5):
        consume(client, f"old-{n}")
    closed = reserve(client, 1, ttl_s=60)["reservation_id"]
    client.post(f"/v1/tenants/t1/usage/reservations/{closed}/release", headers=AUTH)
    clock.advance(seconds=kept - 30)
    consume(client, "young")
    still_held = reserve(client, 1, ttl_s=60)["reservation_id"]
    assert bus.call(quota.prune_usage_keys_job) == {"answers": 0, "reservations": 0}
    assert consume(client, "old-0")["used"] == 1                      # within the horizon: the first answer

    clock.advance(seconds=91)   # the old keys, and the closed reservation's expiry, are past the horizon
    assert bus.call(quota.prune_usage_keys_job) == {"answers": 5, "reservations": 1}   # three batches of ≤ 2
    with bus.uow_factory() as uow:
        assert {row.idempotency_key for row in uow.session.execute(select(UsageRequest)).scalars()} == {"young"}
        assert [row.id for row in uow.session.execute(select(UsageReservation)).scalars()] == [still_held]
    assert consume(client, "young")["used"] == 6                      # still a repeat
    assert consume(client, "old-0")["used"] == 7                      # forgotten: a new consumption
    assert client.post(f"/v1/tenants/t1/usage/reservations/{closed}/commit", headers=AUTH,
                       json={}).status_code == 404


def test_the_scheduler_prunes_usage_keys_a_minute_after_it_starts(pg_engine, make_settings, clock):
    from billing_sync.workers.scheduler import Scheduler
    bus = make_bus(make_settings(database_url=str(pg_engine.url), api_tokens="svc"), pg_engine, NoStripe(), clock)
    job = next(job for job in Scheduler(bus, enqueue=lambda _m: None, send_command=lambda _c: None).jobs
               if job.name == "prune_usage_keys")
    assert (job.interval_s, job.first_run_immediately) == (60, False)
    assert job.run() == {"answers": 0, "reservations": 0}


def test_a_consumption_does_not_wait_for_a_worker_holding_the_tenant_lock(client, bus):
    """A worker holds its tenant's row lock for a whole message, Stripe calls included; the
    per-second counter's foreign key on `tenants` must not make every consumption of that
    tenant wait for it (nor deadlock with a worker recording usage under that lock)."""
    tenant(bus, limit=100)
    consume(client, "first")   # the period's counter exists
    with bus.uow_factory() as worker:
        worker.tenants.lock("t1")
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(consume, client, "during", 1, "t1", timestamp="2026-11-16T09:31:07Z")
            assert answer.result(timeout=10)["used"] == 2
        worker.rollback()
