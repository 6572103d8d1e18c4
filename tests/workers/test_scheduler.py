"""The scheduler on real PostgreSQL: one leader across the fleet, a persistent schedule, failures
that do not stop it; and `billing-sync reconcile` wiring. The jobs themselves (handlers.catch_up, sweep, lapses)
are replaced by recorders here, routed by the scheduler's bus — they are tested with the handlers."""
from __future__ import annotations

import io
import json
import threading
import time
from datetime import timedelta

import pytest
import structlog
from sqlalchemy import text

from billing_sync.bootstrap import bootstrap
from billing_sync.errors import TransientError
from billing_sync.handlers.messages import CatchUpDue, InboxRepairDue, ReconcileRequested, RefreshDue, SweepDue
from billing_sync.models import make_session_factory, utcnow
from billing_sync.models.tables import SyncCursor
from billing_sync.ops.jobs import run_reconcile
from billing_sync.workers.leader import AdvisoryLock, ProcessLock
from billing_sync.workers.scheduler import Scheduler

from contexts import wait_until


class Recorder:
    """Stands in for the catch-up, sweep and refresh-due jobs and counts calls (thread-safe)."""

    def __init__(self, result=0, fail: int = 0):
        self.calls = 0
        self.result = result
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self._lock:
            self.calls += 1
            if self.calls <= self.fail:
                raise RuntimeError("stripe is down")
        return self.result


@pytest.fixture
def job_routes() -> dict:
    """The scheduler's jobs a test replaces, by message type (refresh-due always: it is cheap but
    would touch every tenant)."""
    return {RefreshDue: Recorder(result=0)}


@pytest.fixture
def make_scheduler(job_routes):
    """`Scheduler(bus, …)` on `bus` with the jobs of `job_routes` routed to their stand-ins."""
    def make(bus, **options) -> Scheduler:
        options.setdefault("flush_meter", Recorder())   # the workers' flush_meter (no broker here)
        return Scheduler(bus.with_routes(job_routes), **options)

    return make


@pytest.fixture
def jobs(job_routes):
    catch_up, sweep = Recorder(result=3), Recorder(result={"tenants": 2, "errors": 0, "failed": []})
    job_routes.update({CatchUpDue: catch_up, SweepDue: sweep})
    return catch_up, sweep


@pytest.fixture
def pg_bus(pg_engine, make_settings):
    return bootstrap(make_settings(catch_up_interval_s=60, sweep_interval_s=600), engine=pg_engine)


def cursor(engine, name: str):
    with make_session_factory(engine)() as session:
        row = session.get(SyncCursor, name)
        return row.value if row else None


def set_cursor(engine, name: str, value: str) -> None:
    with make_session_factory(engine)() as session, session.begin():
        row = session.get(SyncCursor, name) or SyncCursor(name=name, value=value)
        row.value = value
        session.add(row)


def test_only_the_lock_holder_acts_and_a_standby_takes_over(make_scheduler, pg_bus, jobs):
    catch_up, _ = jobs
    first, second = make_scheduler(pg_bus, enqueue=print), make_scheduler(pg_bus, enqueue=print)
    try:
        assert first.tick() == ["catch_up", "repair_commands", "refresh_due", "release_reservations", "expiring_cards",
                                "meter_flush"]
        assert second.tick() == []  # standby: the advisory lock is taken
        assert isinstance(second.lock, AdvisoryLock) and not second.lock.held
        assert catch_up.calls == 1

        set_cursor(pg_bus.engine, "scheduler.catch_up_at", (utcnow() - timedelta(hours=1)).isoformat())
        assert second.tick() == []
        first.lock.release()  # the leader goes away
        assert second.tick() == ["catch_up"]
        assert first.tick() == []
        assert catch_up.calls == 2
    finally:
        first.lock.release()
        second.lock.release()


def test_a_leader_whose_connection_dies_loses_the_lock_to_the_standby(make_scheduler, pg_bus, jobs):
    first, second = make_scheduler(pg_bus, enqueue=print), make_scheduler(pg_bus, enqueue=print)
    try:
        assert first.lock.try_acquire()
        assert not second.lock.try_acquire()
        first.lock._conn.invalidate()  # as if the leader's database connection broke
        # PostgreSQL frees a session's advisory locks when its backend exits, a moment after the
        # client closed the socket: the standby gets the lock on one of its next ticks, not
        # necessarily on the first (an immediate try failed 1 in 8 times on a busy machine).
        wait_until(second.lock.try_acquire, 10, "the standby taking the lock")
        assert not first.lock.try_acquire()  # it notices, and stays a standby
    finally:
        first.lock.release()
        second.lock.release()


def test_the_leaders_session_has_postgresql_notice_a_vanished_leader_within_seconds(make_scheduler, pg_bus, jobs):
    """A leader whose machine dies never closes its connection; without TCP keepalives on the
    lock's session the server would keep the session, and the lock, for the OS's 2 hours."""
    scheduler = make_scheduler(pg_bus, enqueue=print)
    try:
        assert scheduler.lock.try_acquire()
        # As the server applies them to this TCP session (SHOW gives the socket's real values).
        idle, interval, count = (int(v) for v in scheduler.lock._conn.execute(text(
            "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'), "
            "current_setting('tcp_keepalives_count')")).one())
        assert 0 < idle + interval * count <= 30, (idle, interval, count)
    finally:
        scheduler.lock.release()


def test_two_deployments_on_one_database_each_have_their_own_leader(make_scheduler, pg_engine, make_settings, jobs):
    """The lock's key derives from BILLING_QUEUE_PREFIX: another deployment's scheduler on the same
    database does not make ours a standby (advisory locks are per database, so deployments on
    their own databases, as they normally are, never meet at all)."""
    ours, theirs = (bootstrap(make_settings(queue_prefix=p), engine=pg_engine) for p in ("dep-a", "dep-b"))
    a, b, a_standby = make_scheduler(ours, enqueue=print), make_scheduler(theirs, enqueue=print), make_scheduler(ours, enqueue=print)
    try:
        assert a.lock.try_acquire() and b.lock.try_acquire()
        assert not a_standby.lock.try_acquire()  # within one deployment, still one leader
    finally:
        for scheduler in (a, b, a_standby):
            scheduler.lock.release()


def test_the_schedule_is_shared_so_a_new_leader_does_not_repeat_a_job(make_scheduler, pg_bus, jobs):
    catch_up, sweep = jobs
    first = make_scheduler(pg_bus, enqueue=print)
    assert first.tick() == ["catch_up", "repair_commands", "refresh_due", "release_reservations", "expiring_cards",
                                "meter_flush"]
    first.lock.release()
    second = make_scheduler(pg_bus, enqueue=print)
    try:
        assert second.tick() == []  # ran a moment ago, by the other scheduler
        # The first sweep of a fresh deployment is one interval away, and recorded as such.
        assert sweep.calls == 0 and cursor(pg_bus.engine, "scheduler.sweep_at") is not None
        set_cursor(pg_bus.engine, "scheduler.sweep_at", (utcnow() - timedelta(seconds=601)).isoformat())
        assert second.tick() == ["sweep"]
        assert sweep.calls == 1
    finally:
        second.lock.release()


def test_a_failing_job_is_retried_later_and_does_not_stop_the_other(make_scheduler, pg_bus, job_routes):
    failing, sweep = Recorder(fail=1), Recorder(result={})
    job_routes.update({CatchUpDue: failing, SweepDue: sweep})
    set_cursor(pg_bus.engine, "scheduler.sweep_at", (utcnow() - timedelta(days=1)).isoformat())
    scheduler = make_scheduler(pg_bus, enqueue=print)
    try:
        assert scheduler.tick() == ["catch_up", "sweep", "repair_commands", "refresh_due", "release_reservations", "expiring_cards",
                                "meter_flush"]
        assert failing.calls == 1 and sweep.calls == 1
        assert cursor(pg_bus.engine, "scheduler.catch_up_at") is None  # not recorded as done
        assert scheduler.tick() == []  # waits before retrying
        scheduler._retry_at.clear()
        assert scheduler.tick() == ["catch_up"]
        assert cursor(pg_bus.engine, "scheduler.catch_up_at") is not None
    finally:
        scheduler.lock.release()


@pytest.mark.parametrize("error, level, traceback", [
    (TransientError("stripe 500: APIError"), "warning", False),  # Stripe away for a moment
    (KeyError("a bug"), "error", True),
])
def test_a_failed_job_is_one_line_with_a_traceback_only_for_a_bug(make_scheduler, pg_bus, jobs, job_routes, error, level,
                                                                 traceback):
    def fail(*_args, **_kwargs):
        raise error

    job_routes[CatchUpDue] = fail
    scheduler = make_scheduler(pg_bus, enqueue=print)
    try:
        with structlog.testing.capture_logs() as logs:
            scheduler.tick()
    finally:
        scheduler.lock.release()
    [line] = [e for e in logs if e["event"] == "scheduler.job_failed"]
    assert line["log_level"] == level and line["job"] == "catch_up" and line["error"] == type(error).__name__
    assert ("exc_info" in line) is traceback


def test_catch_up_gets_the_bus_dependencies_and_the_enqueue_function(make_scheduler, pg_bus, job_routes):
    seen = {}
    job_routes[CatchUpDue] = lambda message, *, enqueue_stripe_event, uow_factory: seen.update(
        uow_factory=uow_factory, enqueue=enqueue_stripe_event) or 0
    sink = []
    scheduler = make_scheduler(pg_bus, enqueue=sink.append)
    try:
        scheduler.tick()
    finally:
        scheduler.lock.release()
    assert seen["uow_factory"] is pg_bus.uow_factory
    seen["enqueue"]({"event": {"id": "evt_1"}})
    assert sink == [{"event": {"id": "evt_1"}}]


def test_repair_commands_gets_the_bus_dependencies_the_send_function_and_the_configured_age(make_scheduler, pg_engine,
                                                                                     make_settings, job_routes):
    seen = {}
    job_routes[InboxRepairDue] = lambda message, *, send_command, uow_factory: seen.update(
        uow_factory=uow_factory, send=send_command, older_than_s=message.older_than_s) or {}
    bus = bootstrap(make_settings(command_repair_after_s=20), engine=pg_engine)
    sink = []
    scheduler = make_scheduler(bus, enqueue=print, send_command=sink.append)
    try:
        assert "repair_commands" in scheduler.tick()
    finally:
        scheduler.lock.release()
    assert seen["uow_factory"] is bus.uow_factory and seen["older_than_s"] == 20
    assert [job.interval_s for job in scheduler.jobs if job.name == "repair_commands"] == [10]
    seen["send"]({"id": "cmd-1"})
    assert sink == [{"id": "cmd-1"}]


def test_two_running_schedulers_run_catch_up_once_per_interval(make_scheduler, pg_engine, make_settings, jobs):
    catch_up, _ = jobs
    bus = bootstrap(make_settings(catch_up_interval_s=1, sweep_interval_s=600), engine=pg_engine)
    schedulers = [make_scheduler(bus, enqueue=print, tick_s=0.05).start() for _ in range(2)]
    time.sleep(2.5)
    for scheduler in schedulers:
        scheduler.stop()
    assert sum(s.lock.held for s in schedulers) == 0  # released on stop
    # t=0, ~1, ~2 (with tick jitter); two uncoordinated schedulers would double that.
    assert 2 <= catch_up.calls <= 4


def test_sqlite_has_one_process_and_always_leads(make_scheduler, sqlite_engine, make_settings, jobs):
    bus = bootstrap(make_settings(), engine=sqlite_engine)
    scheduler = make_scheduler(bus, enqueue=print)
    assert isinstance(scheduler.lock, ProcessLock)
    assert scheduler.tick() == ["catch_up", "repair_commands", "refresh_due", "release_reservations", "expiring_cards",
                                "meter_flush"]


def test_reconcile_one_tenant_prints_the_report_and_exits_0(pg_bus):
    calls = []

    def fake(message: ReconcileRequested) -> dict:
        calls.append((message.tenant_id, message.cause, message.dry_run))
        return {"tenant_id": message.tenant_id, "found": True, "drift": ["status: active -> past_due"],
                "entitlements_changed": False, "version": 3, "dry_run": message.dry_run}

    out = io.StringIO()
    assert run_reconcile(tenant="t1", dry_run=True, bus=pg_bus.with_routes({ReconcileRequested: fake}), out=out) == 0
    assert calls == [("t1", "reconcile", True)]
    report = json.loads(out.getvalue())  # one JSON document (the CLI prints a table or --json: cli/jobs.py)
    assert report["drift"] == ["status: active -> past_due"] and report["dry_run"] is True


def test_reconcile_exits_1_for_an_unknown_tenant_or_a_sweep_with_errors(pg_bus):
    unknown = pg_bus.with_routes({ReconcileRequested: lambda message: {
        "tenant_id": message.tenant_id, "found": False, "drift": [], "dry_run": False}})
    assert run_reconcile(tenant="nobody", bus=unknown, out=io.StringIO()) == 1

    with_errors = pg_bus.with_routes({SweepDue: lambda message: {"tenants": 5, "errors": 1, "failed": ["t4"]}})
    assert run_reconcile(bus=with_errors, out=io.StringIO()) == 1
    clean = pg_bus.with_routes({SweepDue: lambda message: {"tenants": 5, "errors": 0, "failed": []}})
    assert run_reconcile(bus=clean, out=io.StringIO()) == 0


def test_reconcile_reports_a_bms_outage_and_exits_1(pg_bus):
    from billing_sync.errors import TransientError

    def down(message: SweepDue) -> dict:
        raise TransientError("stripe: APIConnectionError")

    out = io.StringIO()
    assert run_reconcile(bus=pg_bus.with_routes({SweepDue: down}), out=out) == 1
    assert json.loads(out.getvalue())["reason"] == "bms_unavailable"


def test_the_loop_survives_an_unreachable_database(make_scheduler, make_settings, jobs):
    from billing_sync.models import make_engine

    engine = make_engine("postgresql://postgres@127.0.0.1:1/nowhere", pool_pre_ping=False)
    bus = bootstrap(make_settings(), engine=engine)
    scheduler = make_scheduler(bus, enqueue=print, tick_s=0.05).start()
    time.sleep(0.3)
    assert scheduler._thread.is_alive()  # still trying, not crashed
    scheduler.stop()
    assert scheduler._thread is None and jobs[0].calls == 0
