"""refresh_entitlements over SQLite rows: the rules' inputs loaded from the mirror, the version
bumped only on a real change, and billing.entitlements.changed queued with it."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing_sync.config.catalog import load_catalog
from billing_sync.config.settings import DEFAULT_CATALOG
from billing_sync.handlers.entitlements import refresh_entitlements
from billing_sync.models import EntitlementSnapshot, OutboxMessage, Subscription, SubscriptionItem

CATALOG = load_catalog(DEFAULT_CATALOG)
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PERIOD_END = NOW + timedelta(days=20)
PRO = ["audit_log", "dashboard", "exports", "sso"]


# -- refresh_entitlements over SQLite rows ----------------------------------------------------


def _refresh(uow, tenant, cause: str, now=NOW) -> bool:
    return refresh_entitlements(uow, tenant, catalog=CATALOG, now=lambda: now, cause=cause)


def _uow(sqlite_engine):
    from billing_sync.models import unit_of_work_factory

    return unit_of_work_factory(sqlite_engine)()


def _add_sub(session, status="active", quantity=1):
    row = Subscription(id="sub_1", tenant_id="t1", status=status, stripe_created=NOW,
                       current_period_end=PERIOD_END, synced_at=NOW)
    row.items = [SubscriptionItem(id="si_1", price_id="price_1", price_lookup_key="pro_monthly",
                                  product_id="prod_pro", quantity=quantity)]
    session.add(row)
    return row


def test_first_refresh_gives_version_1_then_bumps_only_on_change(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        tenant = uow.tenants.lock("t1")
        assert _refresh(uow, tenant, cause="evt_1") is True  # first sight: free tier, v1
        uow.commit()
    with _uow(sqlite_engine) as uow:
        tenant = uow.tenants.lock("t1")
        assert _refresh(uow, tenant, cause="evt_2") is False  # nothing changed
        sub_row = _add_sub(uow.session, quantity=2)
        assert _refresh(uow, tenant, cause="evt_3") is True
        assert _refresh(uow, tenant, cause="evt_4") is False
        sub_row.items[0].quantity = 5
        assert _refresh(uow, tenant, cause="evt_5") is True
        uow.commit()
    with _uow(sqlite_engine) as uow:
        snap = uow.session.get(EntitlementSnapshot, "t1")
        assert snap.version == 3
        assert (snap.plan, snap.limits["seats"], snap.cause) == ("pro", 5, "evt_5")
        events = uow.session.query(OutboxMessage).order_by(OutboxMessage.id).all()
        assert [e.data["version"] for e in events] == [1, 2, 3]
        assert [e.data["cause"] for e in events] == ["evt_1", "evt_3", "evt_5"]
        assert events[-1].type == "billing.entitlements.changed" and events[-1].subject == "t1"
        data = events[-1].data
    assert set(data) == {"tenant_id", "version", "plan", "status", "features", "limits", "period_end", "cause"}
    assert data["period_end"] == PERIOD_END.isoformat()
    assert data["features"] == PRO


def test_every_version_is_kept_with_its_cause_in_the_same_transaction(sqlite_engine):
    from billing_sync.models import EntitlementVersion

    with _uow(sqlite_engine) as uow:
        tenant = uow.tenants.lock("t1")
        _refresh(uow, tenant, cause="evt_1")
        sub_row = _add_sub(uow.session, quantity=2)
        _refresh(uow, tenant, cause="cmd-7")
        _refresh(uow, tenant, cause="evt_2")  # no change: no version
        uow.commit()
    with _uow(sqlite_engine) as uow:
        tenant = uow.tenants.lock("t1")
        uow.session.get(type(sub_row), "sub_1").status = "canceled"
        _refresh(uow, tenant, cause="sweep")
        # rolled back: neither the snapshot nor its version
    with _uow(sqlite_engine) as uow:
        rows = uow.session.query(EntitlementVersion).order_by(EntitlementVersion.version).all()
        assert [(r.version, r.plan, r.cause) for r in rows] == [(1, "free", "evt_1"), (2, "pro", "cmd-7")]
        assert rows[1].limits["seats"] == 2 and rows[1].period_end == PERIOD_END
        assert [v.version for v in uow.entitlement_history.of_tenant("t1")] == [2, 1]
        assert uow.session.get(EntitlementSnapshot, "t1").version == 2
