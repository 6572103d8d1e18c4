"""The unit of work's repositories over SQLite: what each promises, in the unit of work's
transaction (nothing is kept without `uow.commit()`)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing_sync.models import Subscription, UnitOfWork, unit_of_work_factory

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _uow(engine) -> UnitOfWork:
    return unit_of_work_factory(engine)()


def test_a_cursor_is_created_then_moved_and_kept_only_on_commit(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        assert uow.cursors.value("scheduler.sweep_at") is None
        uow.cursors.set("scheduler.sweep_at", "1", T0)
        uow.commit()
    with _uow(sqlite_engine) as uow:
        uow.cursors.set("scheduler.sweep_at", "2", T0 + timedelta(seconds=5))
        uow.cursors.set("a.first", "x", T0)
        uow.commit()
    with _uow(sqlite_engine) as uow:
        uow.cursors.set("scheduler.sweep_at", "3", T0)  # not committed
    with _uow(sqlite_engine) as uow:
        assert uow.cursors.value("scheduler.sweep_at") == "2"
        assert [(c.name, c.value) for c in uow.cursors.all()] == [("a.first", "x"), ("scheduler.sweep_at", "2")]


def test_the_ledger_finds_processed_ids_among_more_than_one_chunk(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        for n in (3, 700, 1199):
            uow.ledger.record(f"evt_{n}", kind="stripe_event", type="invoice.paid")
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.ledger.processed_among(f"evt_{n}" for n in range(1200)) == {"evt_3", "evt_700", "evt_1199"}
        assert uow.ledger.contains("evt_700") and not uow.ledger.contains("evt_4")
        assert uow.ledger.count() == 3


def test_the_outbox_reports_its_backlog_until_rows_are_marked_published(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        assert (uow.outbox.unpublished_count(), uow.outbox.oldest_unpublished_at()) == (0, None)
        rows = [uow.outbox.add("billing.entitlements.changed", "t1", {"n": n}) for n in range(3)]
        uow.commit()
        ids = [row.id for row in rows]
    with _uow(sqlite_engine) as uow:
        assert uow.outbox.unpublished_count() == 3
        uow.outbox.mark_published(ids[:2], T0)
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.outbox.unpublished_count() == 1
        assert uow.outbox.oldest_unpublished_at() is not None


def test_dead_letters_are_counted_selected_marked_and_deleted(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        rows = [uow.dead_letters.add(source="apply_command", message_id=f"m{n}", body="{}", reason="invalid",
                                     detail=None) for n in range(3)]
        uow.commit()
        ids = [row.id for row in rows]
    with _uow(sqlite_engine) as uow:
        uow.dead_letters.mark_replayed(ids[0], T0)
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.dead_letters.counts() == (3, 2)
        assert [row.id for row in uow.dead_letters.selected([], everything=True)] == ids[1:]
        assert [row.id for row in uow.dead_letters.newest(2)] == [ids[2], ids[1]]
        assert uow.dead_letters.existing([ids[1], 999]) == {ids[1]}
        assert uow.dead_letters.delete([ids[1], 999]) == 1
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.dead_letters.delete(None) == 2
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.dead_letters.counts() == (0, 0)


def test_a_snapshot_is_new_until_committed_and_then_found_with_its_version(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        uow.tenants.lock("t1")  # a snapshot belongs to a tenant row
        assert uow.snapshots.get("t1") is None and uow.snapshots.version("t1") is None
        snapshot = uow.snapshots.get_or_new("t1")
        snapshot.version, snapshot.plan, snapshot.status = 1, "free", "none"
        snapshot.features, snapshot.limits = [], {}
        assert uow.snapshots.get_or_new("t1") is snapshot  # the same row, not a second one
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.snapshots.version("t1") == 1


def test_a_tenant_is_created_by_its_first_lock_and_found_by_its_customer(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        tenant = uow.tenants.lock("t1")
        assert uow.tenants.lock("t1") is tenant  # locking again neither fails nor adds a row
        tenant.stripe_customer_id = "cus_1"
        assert uow.tenants.by_customer("cus_1") is tenant
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.tenants.by_customer("cus_1").id == "t1"
        assert uow.tenants.by_customer("cus_2") is None
        uow.tenants.lock("t2")
        assert uow.tenants.get("t2").stripe_customer_id is None and uow.tenants.get("t3") is None
        assert uow.tenants.customer_ids() == {"t1": "cus_1", "t2": None}


def test_the_inbox_keeps_the_receive_order_parks_and_finishes(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        first = uow.inbox.record("c1", "t1", "billing.tenant.provisioned", "{}")
        uow.inbox.record("c2", "t1", "billing.subscription.change", "{}")
        uow.inbox.record("x1", "t2", "billing.tenant.provisioned", "{}")
        again = uow.inbox.record("c1", "t1", "billing.tenant.provisioned", "{}")  # a redelivery
        assert again.seq == first.seq
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.inbox.earlier_unfinished("c2", "t1") == "c1"
        assert uow.inbox.earlier_unfinished("c1", "t1") is None
        assert uow.inbox.earlier_unfinished("x1", "t2") is None
        assert uow.inbox.next_parked("t1") is None  # c1 is first and not parked
        uow.inbox.park("c2")
        uow.inbox.finish("c1")
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.inbox.next_parked("t1").command_id == "c2"
        uow.inbox.mark_sent("c2", T0)
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.inbox.next_parked("t1") is None
        assert uow.inbox.earlier_unfinished("c2", "t1") is None


def test_the_inbox_hands_out_each_tenants_first_due_command_and_prunes_finished_ones(sqlite_engine):
    sent_at = datetime.now(UTC) - timedelta(hours=1)
    with _uow(sqlite_engine) as uow:
        for command_id, tenant_id in (("c1", "t1"), ("c2", "t1"), ("x1", "t2"), ("y1", "t3")):
            uow.inbox.record(command_id, tenant_id, "billing.subscription.change", "{}")
            uow.inbox.mark_sent(command_id, sent_at)
        uow.inbox.mark_sent("y1", datetime.now(UTC) + timedelta(hours=1))  # sent just now: not due
        uow.commit()
    with _uow(sqlite_engine) as uow:
        due = uow.inbox.due_for_repair(datetime.now(UTC), limit=10)
        assert [row.command_id for row in due] == ["c1", "x1"]  # c2 waits for c1
        assert [row.command_id for row in uow.inbox.due_for_repair(datetime.now(UTC), limit=1)] == ["c1"]
        uow.inbox.mark_sent("c1", sent_at, repair=True)
        uow.inbox.finish("x1")
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert [(row.command_id, row.repairs) for row in uow.inbox.due_for_repair(
            datetime.now(UTC), limit=10)] == [("c1", 1)]
        assert uow.inbox.prune_finished_before(datetime.now(UTC) - timedelta(days=1)) == 0
        assert uow.inbox.prune_finished_before(datetime.now(UTC) + timedelta(seconds=1)) == 1
        uow.commit()


def test_usage_is_counted_per_second_and_summed_over_a_period(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        uow.tenants.lock("t1")
        uow.quotas.add_second("t1", "api_calls", T0, 5)
        uow.quotas.add_second("t1", "api_calls", T0, 7)  # the same second: the same counter
        uow.quotas.add_second("t1", "api_calls", T0 + timedelta(days=1), 1)
        uow.quotas.add_second("t1", "projects", T0, 100)
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.usage.total("t1", "api_calls", T0, T0 + timedelta(days=1)) == 12  # end excluded
        assert uow.usage.total("t1", "api_calls", T0, T0 + timedelta(days=2)) == 13
        assert uow.usage.total("t2", "api_calls", T0, T0 + timedelta(days=2)) == 0


def test_the_usage_period_is_that_of_the_newest_subscription_in_the_given_statuses(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        uow.tenants.lock("t1")
        assert uow.usage.subscription_period("t1", ["active"]) is None
        for sub_id, status, created, start in (("sub_old", "active", T0, T0),
                                               ("sub_new", "active", T0 + timedelta(days=1), T0 + timedelta(days=3)),
                                               ("sub_gone", "canceled", T0 + timedelta(days=2), T0)):
            uow.session.add(Subscription(id=sub_id, tenant_id="t1", status=status, stripe_created=created,
                                         current_period_start=start, current_period_end=start + timedelta(days=30)))
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.usage.subscription_period("t1", ["active", "trialing"]) == (T0 + timedelta(days=3),
                                                                               T0 + timedelta(days=33))
        assert uow.usage.subscription_period("t1", ["trialing"]) is None


def test_the_outbox_claims_unpublished_rows_in_id_order(sqlite_engine):
    with _uow(sqlite_engine) as uow:
        rows = [uow.outbox.add("billing.entitlements.changed", f"t{n % 2}", {"n": n}) for n in range(4)]
        uow.commit()
        ids = [row.id for row in rows]
    with _uow(sqlite_engine) as uow:
        uow.outbox.mark_published(ids[:1], T0)
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert [row.id for row in uow.outbox.claim_unpublished(2)] == ids[1:3]
