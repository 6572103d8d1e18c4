"""The unit of work's repositories over SQLite: what each promises, in the unit of work's
transaction (nothing is kept without `uow.commit()`)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from billing_sync.models import UnitOfWork, make_session_factory

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)


def _uow(engine) -> UnitOfWork:
    return UnitOfWork(make_session_factory(engine))


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
        uow.lock_tenant("t1")  # a snapshot belongs to a tenant row
        assert uow.snapshots.get("t1") is None and uow.snapshots.version("t1") is None
        snapshot = uow.snapshots.get_or_new("t1")
        snapshot.version, snapshot.plan, snapshot.status = 1, "free", "none"
        snapshot.features, snapshot.limits = [], {}
        assert uow.snapshots.get_or_new("t1") is snapshot  # the same row, not a second one
        uow.commit()
    with _uow(sqlite_engine) as uow:
        assert uow.snapshots.version("t1") == 1
