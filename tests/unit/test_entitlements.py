"""derive(): every status rule of the design, as a table, plus enrichment and refresh_entitlements."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from billing_sync.config.catalog import load_catalog
from billing_sync.config.settings import DEFAULT_CATALOG
from billing_sync.handlers.entitlements import (
    ItemState,
    ProductInfo,
    SubscriptionState,
    derive,
    refresh_entitlements,
)
from billing_sync.models import EntitlementSnapshot, OutboxMessage, Subscription, SubscriptionItem

CATALOG = load_catalog(DEFAULT_CATALOG)
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
PERIOD_END = NOW + timedelta(days=20)
GRACE = timedelta(days=CATALOG.past_due_grace_days)

PRO = ["audit_log", "dashboard", "exports", "sso"]
PRO_LIMITS_3_SEATS = {"api_calls": 500000, "projects": 50, "seats": 3}
FREE = ["dashboard"]
FREE_LIMITS = {"api_calls": 1000, "projects": 1, "seats": 1}


def sub(status="active", lookup_key="pro_monthly", quantity=3, product="prod_pro", **kw) -> SubscriptionState:
    kw.setdefault("current_period_end", PERIOD_END)
    kw.setdefault("created", NOW - timedelta(days=40))
    return SubscriptionState(id=kw.pop("id", "sub_1"), status=status,
                             items=(ItemState("price_1", lookup_key, product, quantity),), **kw)


# (case, subscription, expected plan, expected status)
STATUS_TABLE = [
    ("active", sub("active"), "pro", "active"),
    ("trialing", sub("trialing"), "pro", "trialing"),
    ("past_due just now", sub("past_due", past_due_since=NOW), "pro", "past_due"),
    ("past_due inside grace", sub("past_due", past_due_since=NOW - GRACE + timedelta(minutes=1)), "pro", "past_due"),
    ("past_due grace over", sub("past_due", past_due_since=NOW - GRACE), "free", "past_due"),
    ("past_due without since starts grace now", sub("past_due"), "pro", "past_due"),
    ("canceled", sub("canceled"), "free", "canceled"),
    ("unpaid", sub("unpaid"), "free", "unpaid"),
    ("incomplete", sub("incomplete"), "free", "incomplete"),
    ("incomplete_expired", sub("incomplete_expired"), "free", "incomplete_expired"),
    ("paused", sub("paused"), "free", "paused"),
    ("cancel_at_period_end before the end", sub("active", cancel_at_period_end=True), "pro", "active"),
    ("cancel_at_period_end after the end",
     sub("active", cancel_at_period_end=True, current_period_end=NOW - timedelta(seconds=1)), "free", "active"),
    ("cancel_at in the future", sub("active", cancel_at=NOW + timedelta(days=1)), "pro", "active"),
    ("cancel_at passed", sub("active", cancel_at=NOW), "free", "active"),
    ("no subscription", None, "free", "none"),
    ("unknown price", sub("active", lookup_key="mystery_monthly"), "free", "active"),
]


@pytest.mark.parametrize("case, state, plan, status", STATUS_TABLE, ids=[row[0] for row in STATUS_TABLE])
def test_status_rules(case, state, plan, status):
    ent = derive(CATALOG, state, [], {}, NOW)
    assert (ent.plan, ent.status) == (plan, status)
    if plan == "pro":
        assert ent.features == PRO
        assert ent.limits == PRO_LIMITS_3_SEATS
        assert ent.period_end == state.current_period_end
    else:
        assert ent.features == FREE
        assert ent.limits == FREE_LIMITS
        assert ent.period_end is None


def test_unknown_price_is_logged(caplog):
    import structlog.testing

    with structlog.testing.capture_logs() as logs:
        derive(CATALOG, sub(lookup_key="mystery_monthly"), [], {}, NOW)
    assert any(entry["event"] == "entitlements.unknown_price" for entry in logs)


def test_per_seat_limits_scale_with_quantity():
    ent = derive(CATALOG, sub("active", lookup_key="starter_monthly", quantity=7), [], {}, NOW)
    assert ent.plan == "starter"
    assert ent.limits == {"api_calls": 50000, "projects": 5, "seats": 7}


def test_plan_from_product_metadata_when_price_has_no_lookup_key():
    products = {"prod_x": ProductInfo(metadata={"plan": "enterprise"})}
    ent = derive(CATALOG, sub(lookup_key=None, product="prod_x", quantity=1), [], products, NOW)
    assert ent.plan == "enterprise"
    assert "priority_support" in ent.features


def test_enrichment_from_product_metadata_features_and_stripe_entitlements():
    products = {"prod_pro": ProductInfo(metadata={"features": " beta_ui, webhooks ,", "limit_projects": "75",
                                                  "limit_bad": "lots"},
                                        features=("sandbox",))}
    ent = derive(CATALOG, sub(), ["analytics", ""], products, NOW)
    assert ent.features == sorted(PRO + ["beta_ui", "webhooks", "sandbox", "analytics"])
    # limit_<name> replaces the plan's base limit; per-seat still added; bad values ignored.
    assert ent.limits == {"api_calls": 500000, "projects": 75, "seats": 3}


def test_enrichment_not_applied_on_the_free_tier():
    products = {"prod_pro": ProductInfo(metadata={"features": "beta_ui"}, features=("sandbox",))}
    ent = derive(CATALOG, sub("canceled"), ["analytics"], products, NOW)
    assert ent.features == FREE


def test_metadata_limit_overrides_per_seat_base():
    products = {"prod_pro": ProductInfo(metadata={"limit_seats": "10"})}
    ent = derive(CATALOG, sub(quantity=3), [], products, NOW)
    assert ent.limits["seats"] == 13  # base 10 from metadata + 1 per seat × 3


# Several subscriptions: granting beats not granting; then active > trialing > past_due; then newest.
MULTI_TABLE = [
    ("canceled old + active new", [sub("canceled", id="a", lookup_key="enterprise_monthly"), sub("active", id="b")],
     "pro", "active"),
    ("active beats trialing", [sub("trialing", id="a", lookup_key="enterprise_monthly"), sub("active", id="b")],
     "pro", "active"),
    ("trialing beats past_due", [sub("past_due", id="a", past_due_since=NOW), sub("trialing", id="b",
                                                                                   lookup_key="starter_monthly")],
     "starter", "trialing"),
    ("newest of equals", [sub("active", id="a", lookup_key="starter_monthly", created=NOW - timedelta(days=9)),
                          sub("active", id="b", lookup_key="enterprise_monthly", created=NOW - timedelta(days=1))],
     "enterprise", "active"),
    ("past_due in grace beats canceled", [sub("canceled", id="a", created=NOW),
                                          sub("past_due", id="b", past_due_since=NOW)], "pro", "past_due"),
    ("all dead: newest status", [sub("canceled", id="a", created=NOW - timedelta(days=9)),
                                 sub("unpaid", id="b", created=NOW - timedelta(days=1))], "free", "unpaid"),
    ("unknown price loses to a known one", [sub("active", id="a", lookup_key="zzz", created=NOW),
                                            sub("active", id="b", lookup_key="starter_monthly")], "starter", "active"),
]


@pytest.mark.parametrize("case, states, plan, status", MULTI_TABLE, ids=[row[0] for row in MULTI_TABLE])
def test_best_live_subscription_wins(case, states, plan, status):
    ent = derive(CATALOG, states, [], {}, NOW)
    assert (ent.plan, ent.status) == (plan, status)
    # Order of the input does not matter.
    assert derive(CATALOG, list(reversed(states)), [], {}, NOW) == ent


def test_derive_needs_the_time():
    with pytest.raises(ValueError):
        derive(CATALOG, None, [], {}, None)


# -- refresh_entitlements over SQLite rows ----------------------------------------------------


class _Ctx:
    def __init__(self, now):
        self.catalog = CATALOG
        self._now = now

    def now(self):
        return self._now


def _uow(sqlite_engine):
    from billing_sync.models import UnitOfWork, make_session_factory

    return UnitOfWork(make_session_factory(sqlite_engine))


def _add_sub(session, status="active", quantity=1):
    row = Subscription(id="sub_1", tenant_id="t1", status=status, stripe_created=NOW,
                       current_period_end=PERIOD_END, synced_at=NOW)
    row.items = [SubscriptionItem(id="si_1", price_id="price_1", price_lookup_key="pro_monthly",
                                  product_id="prod_pro", quantity=quantity)]
    session.add(row)
    return row


def test_first_refresh_gives_version_1_then_bumps_only_on_change(sqlite_engine):
    ctx = _Ctx(NOW)
    with _uow(sqlite_engine) as uow:
        tenant = uow.lock_tenant("t1")
        assert refresh_entitlements(uow, tenant, ctx, cause="evt_1") is True  # first sight: free tier, v1
        uow.commit()
    with _uow(sqlite_engine) as uow:
        tenant = uow.lock_tenant("t1")
        assert refresh_entitlements(uow, tenant, ctx, cause="evt_2") is False  # nothing changed
        sub_row = _add_sub(uow.session, quantity=2)
        assert refresh_entitlements(uow, tenant, ctx, cause="evt_3") is True
        assert refresh_entitlements(uow, tenant, ctx, cause="evt_4") is False
        sub_row.items[0].quantity = 5
        assert refresh_entitlements(uow, tenant, ctx, cause="evt_5") is True
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
