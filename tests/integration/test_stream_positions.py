"""Stream positions (`outbox.stream_seq`, migration 0013) follow commit order, not insert order: a
reader that has seen position p never finds a row with a smaller position committed later, so
"after p" (what a Last-Event-ID resume reads) cannot skip a change. The case that would break an
insert-time id: a transaction that inserted first but commits last."""
from __future__ import annotations

from billing_sync.contract.stream_wire import STREAMED_TYPES
from billing_sync.models import unit_of_work_factory


def _add(uow, type: str, tenant: str) -> None:
    uow.outbox.add(type, tenant, {"tenant_id": tenant, "version": 1})
    uow.flush()  # the INSERT happens now: an insert-time id would be taken here


def test_a_transaction_that_inserts_first_and_commits_last_gets_the_later_position(pg_engine):
    uow_factory = unit_of_work_factory(pg_engine)
    with uow_factory() as early, uow_factory() as late:
        _add(early, "billing.entitlements.changed", "early")
        _add(late, "billing.entitlements.changed", "late")
        late.commit()
        with uow_factory() as reader:
            seen = reader.stream_log.after(0, 10)
        assert [row.subject for row in seen] == ["late"]
        early.commit()
    with uow_factory() as reader:
        rows = reader.stream_log.after(0, 10)
        assert [row.subject for row in rows] == ["late", "early"]
        assert [row.subject for row in reader.stream_log.after(seen[-1].position, 10)] == ["early"]
        assert reader.stream_log.head() == rows[-1].position


def test_only_the_streamed_types_get_a_position(pg_engine, sqlite_engine):
    for engine in (pg_engine, sqlite_engine):
        uow_factory = unit_of_work_factory(engine)
        with uow_factory() as uow:
            for type in (*STREAMED_TYPES, "billing.command.completed", "billing.usage.threshold_reached"):
                _add(uow, type, "t1")
            uow.commit()
        with uow_factory() as uow:
            assert [row.type for row in uow.stream_log.after(0, 10)] == list(STREAMED_TYPES), engine.dialect.name


def test_a_transaction_that_rolls_back_is_never_streamed(pg_engine):
    uow_factory = unit_of_work_factory(pg_engine)
    with uow_factory() as uow:
        _add(uow, "billing.entitlements.changed", "kept-1")
        uow.commit()
    with uow_factory() as uow:
        _add(uow, "billing.entitlements.changed", "rolled-back")  # leaves without commit: the trigger never ran
    with uow_factory() as uow:
        _add(uow, "billing.entitlements.changed", "kept-2")
        uow.commit()
    with uow_factory() as uow:
        assert [row.subject for row in uow.stream_log.after(0, 10)] == ["kept-1", "kept-2"]
