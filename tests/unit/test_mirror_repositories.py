"""The Stripe mirror's repositories (models/mirror.py) over SQLite: which tenants a catalog change
reaches, whose entitlements may have lapsed with time, and a product row created once."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing_sync.models import EntitlementSnapshot, Subscription, SubscriptionItem, UnitOfWork, unit_of_work_factory

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _uow(engine) -> UnitOfWork:
    return unit_of_work_factory(engine)()


def _subscribe(uow: UnitOfWork, tenant_id: str, sub_id: str, *items: tuple[str, str | None], plan: str = "pro",
               **fields) -> None:
    uow.tenants.lock(tenant_id)
    row = Subscription(id=sub_id, tenant_id=tenant_id, status=fields.pop("status", "active"), stripe_created=T0,
                       synced_at=T0, **fields)
    row.items = [SubscriptionItem(id=f"si_{sub_id}_{n}", price_id=price, product_id=product, quantity=1)
                 for n, (price, product) in enumerate(items)]
    uow.subscriptions.add(row)
    uow.session.add(EntitlementSnapshot(tenant_id=tenant_id, version=1, plan=plan, status="active"))


def test_a_catalog_change_reaches_the_tenants_on_its_product_or_price(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        _subscribe(uow, "t1", "sub_1", ("price_a", "prod_a"))
        _subscribe(uow, "t2", "sub_2", ("price_b", "prod_b"), ("price_a2", "prod_a"))
        _subscribe(uow, "t3", "sub_3", ("price_c", None))
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.subscriptions.tenants_on("prod_a") == ["t1", "t2"]
        assert uow.subscriptions.tenants_on("prod_x", "price_c") == ["t3"]
        assert uow.subscriptions.product_ids_of_tenant("t2") == {"prod_a", "prod_b"}
        assert uow.subscriptions.product_ids_of_tenant("t3") == set()
        assert [i.id for i in uow.subscriptions.items_on_price("t2", "price_a2")] == ["si_sub_2_1"]
        assert uow.subscriptions.items_on_price("t1", "price_a2") == []
        assert [s.id for s in uow.subscriptions.of_tenant("t2")] == ["sub_2"]


def test_tenants_whose_grant_lapsed_with_time(sqlite_engine):
    now = T0 + timedelta(days=30)
    with _uow(sqlite_engine) as uow:
        _subscribe(uow, "grace-over", "sub_1", status="past_due", past_due_since=T0)
        _subscribe(uow, "grace-running", "sub_2", status="past_due", past_due_since=now - timedelta(days=1))
        _subscribe(uow, "period-ended", "sub_3", cancel_at_period_end=True, current_period_end=now - timedelta(hours=1))
        _subscribe(uow, "cancel-at-passed", "sub_4", cancel_at=now - timedelta(seconds=1))
        _subscribe(uow, "already-free", "sub_5", cancel_at=now - timedelta(seconds=1), plan="free")
        _subscribe(uow, "canceled", "sub_6", status="canceled", cancel_at=now - timedelta(seconds=1))
        uow.commit()
    with _uow(sqlite_engine) as uow:
        lapsed = uow.subscriptions.tenants_lapsed_by(now, past_due_since=now - timedelta(days=7),
                                                     granting=("active", "trialing", "past_due"), free_plan="free")
    assert lapsed == ["cancel-at-passed", "grace-over", "period-ended"]


def test_a_product_row_is_inserted_once_and_found_among_others(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        first = uow.products.get_or_insert("prod_1", T0)
        first.name = "Pro"
        again = uow.products.get_or_insert("prod_1", T0 + timedelta(seconds=1))
        assert again is first and again.name == "Pro" and again.synced_at == T0
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.products.locked("prod_1").name == "Pro" and uow.products.locked("prod_none") is None
        assert [p.id for p in uow.products.among(["prod_1", "prod_none"])] == ["prod_1"]
        assert uow.products.among([]) == []
