"""The scheduler: the periodic jobs that repair what webhooks alone cannot.

- **catch-up** (every `catch_up_interval_s`): lists the Stripe events created since the newest one
  seen and enqueues those not in the ledger to `process_stripe_event`, for webhooks that never
  arrived (`handlers.catch_up`).
- **sweep** (every `sweep_interval_s`): lists every Stripe customer and subscription, page by page,
  and reconciles each tenant, repairing any drift (`handlers.sweep`).
- **repair-commands** (every `command_repair_after_s / 2`, at most 30 s; database and broker):
  sends each tenant's first command that has no outcome yet again once it was last sent longer
  than `command_repair_after_s` ago (the Dramatiq broker lost it), or at once if it waits for a
  turn that nobody gave it (`handlers.command_inbox.repair`; `billing-sync inbox repair` on demand).
- **refresh-due** (every minute, database only): re-derives tenants whose past_due grace period
  or cancellation date has passed, which no Stripe event announces (`handlers.lapses`).
- **prune-usage-keys** (every minute, database only, the first a minute after a start): forgets
  usage idempotency answers and closed reservations older than `usage_keys_kept_s`, in batches
  (`handlers.quota.prune_usage_keys_job`).
- **expiring-cards** (every minute, database only): `billing.payment_method.expiring`, once per
  card, 30 days before it expires (`handlers.expiring_cards`).
- **meter-flush** (every `meter_flush_interval_s`; broker only): sends the workers' `flush_meter`,
  which sends the closed usage windows to Stripe (`handlers.metering`); the Stripe calls happen in
  a worker, under metering's own rate limit, so a backlog never holds up the other jobs.

Only one scheduler acts at a time across the fleet, so operators may run two for availability:
the leader holds a PostgreSQL advisory lock (`workers/leader.py`); if it dies, the standby takes
over within a tick. The jobs are idempotent (the ledger, versions that
only move on a real change), so the short overlap possible during a network partition is safe.

When each job last ran is stored in `sync_cursors` (`scheduler.catch_up_at`,
`scheduler.sweep_at`), so a restart or a change of leader neither repeats a sweep early nor
starves it. A fresh deployment runs catch-up at once and its first sweep one interval later
(`billing-sync reconcile` backfills on demand). A job that raises is logged and retried after
`min(interval, 30 s)`; the scheduler itself keeps going.

On SQLite (embedded, one process) there is no fleet to coordinate with, and the lock always
succeeds. The same jobs run once from the command line are in `ops/jobs.py`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import structlog

from ..errors import SafetyRefusal
from ..handlers import expiring_cards, quota
from ..handlers.messagebus import Bus
from ..handlers.messages import CatchUpDue, InboxRepairDue, RefreshDue, SweepDue
from ..models import utcnow
from .leader import make_lock
from .middleware import failure_detail, failure_reason, is_transient

log = structlog.get_logger(__name__)

TICK_S = 1.0
RETRY_AFTER_FAILURE_S = 30.0
REFRESH_DUE_INTERVAL_S = 60.0


# -- the jobs -----------------------------------------------------------------------------------


@dataclass
class Job:
    name: str
    interval_s: float
    run: Callable[[], object]
    first_run_immediately: bool

    @property
    def cursor(self) -> str:
        return f"scheduler.{self.name}_at"


def repair_interval_s(settings) -> float:
    """How often the inbox repair runs: twice per `command_repair_after_s`, at least every 30 s."""
    return min(settings.command_repair_after_s / 2, RETRY_AFTER_FAILURE_S)


def _send_command_to_current_broker(envelope: dict) -> None:
    from .broker import send_command

    send_command(envelope)


def _flush_meter_on_current_broker() -> None:
    from .broker import current_broker

    current_broker().billing_actors.flush_meter.send()


def _enqueue_on_current_broker(message: dict) -> None:
    from .broker import current_broker

    current_broker().billing_actors.process_stripe_event.send(message)


class Scheduler:
    """Runs the periodic jobs while it holds the fleet-wide lock.

    `run(stop_event)` is the loop (for `billing-sync scheduler` and the one-process fleet),
    `start()`/`stop()` run it in a thread, `tick()` is one step (for tests).
    """

    def __init__(self, bus: Bus, *, enqueue: Callable[[dict], None] | None = None,
                 send_command: Callable[[dict], None] | None = None, flush_meter: Callable[[], None] | None = None,
                 tick_s: float = TICK_S, lock=None):
        # What the jobs send goes to `enqueue` / `send_command`, by default to the process's broker.
        bus = bus.replace(enqueue_stripe_event=enqueue or _enqueue_on_current_broker,
                          send_command=send_command or _send_command_to_current_broker)
        self.bus = bus
        self.tick_s = tick_s
        self.lock = lock or make_lock(bus.engine, bus.settings.queue_prefix)
        repair = InboxRepairDue(older_than_s=bus.settings.command_repair_after_s)
        self.jobs = [
            Job("catch_up", bus.settings.catch_up_interval_s, lambda: bus.handle(CatchUpDue()), True),
            Job("sweep", bus.settings.sweep_interval_s, lambda: bus.handle(SweepDue()), False),
            # Commands the broker lost, or parked ones whose turn came while nobody was told.
            Job("repair_commands", repair_interval_s(bus.settings), lambda: bus.handle(repair), True),
            # Grace periods and cancellation dates lapse with no Stripe event to announce them.
            Job("refresh_due", REFRESH_DUE_INTERVAL_S, lambda: bus.handle(RefreshDue()), True),
            # Expired usage reservations (consumptions also release them lazily before refusing).
            Job("release_reservations", REFRESH_DUE_INTERVAL_S, lambda: bus.call(quota.release_expired_job), True),
            # Usage idempotency answers past BILLING_USAGE_KEYS_KEPT_S (a minute after a start, not at it).
            Job("prune_usage_keys", REFRESH_DUE_INTERVAL_S, lambda: bus.call(quota.prune_usage_keys_job), False),
            # A card nearing its expiry: no Stripe event announces it either.
            Job("expiring_cards", REFRESH_DUE_INTERVAL_S,
                lambda: bus.call(expiring_cards.announce_expiring_cards), True),
            # Usage to Stripe, one meter event per tenant, meter and minute: a worker sends it.
            Job("meter_flush", bus.settings.meter_flush_interval_s,
                flush_meter or _flush_meter_on_current_broker, True),
        ]
        self._retry_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False

    # -- one step -------------------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Run every job that is due, if this scheduler leads; return the names of those run."""
        if not self._lead():
            return []
        ran = []
        for job in self.jobs:
            if self._stop.is_set():
                break
            if self._due(job):
                self._run(job)
                ran.append(job.name)
        return ran

    def _lead(self) -> bool:
        try:
            leading = self.lock.try_acquire()
        except Exception as exc:  # database down: nobody can act anyway
            log.warning("scheduler.lock_unavailable", error=type(exc).__name__)
            leading = False
        if leading != self._leading:
            log.info("scheduler.leader" if leading else "scheduler.standby")
            self._leading = leading
        return leading

    def _due(self, job: Job) -> bool:
        if time.monotonic() < self._retry_at.get(job.name, 0.0):
            return False
        last = self._last_run(job)
        if last is None:
            if job.first_run_immediately:
                return True
            self._record_run(job, utcnow())  # a fresh deployment: the first one is an interval away
            return False
        return (utcnow() - last).total_seconds() >= job.interval_s

    def _run(self, job: Job) -> None:
        started = time.monotonic()
        try:
            result = job.run()
        except SafetyRefusal as exc:  # e.g. a sweep that would change most tenants: stop and ask
            self._retry_at[job.name] = time.monotonic() + job.interval_s
            log.error("scheduler.job_refused", job=job.name, detail=str(exc), retry_in_s=job.interval_s)
            return
        except Exception as exc:  # log, retry soon, keep the other job and the loop alive
            retry_in = min(job.interval_s, RETRY_AFTER_FAILURE_S)
            self._retry_at[job.name] = time.monotonic() + retry_in
            fields = dict(job=job.name, reason=failure_reason(exc), error=type(exc).__name__, retry_in_s=retry_in)
            if is_transient(exc):  # Stripe or the database unavailable for a moment: no traceback
                log.warning("scheduler.job_failed", **fields, detail=failure_detail(exc)[:200])
            else:  # a bug: its traceback, as a field of this one line
                log.error("scheduler.job_failed", **fields, exc_info=exc)
            return
        self._retry_at.pop(job.name, None)
        self._record_run(job, utcnow())
        log.info("scheduler.job_done", job=job.name, seconds=round(time.monotonic() - started, 3),
                 result=_summary(result))

    def _last_run(self, job: Job) -> datetime | None:
        with self.bus.uow_factory() as uow:
            value = uow.cursors.value(job.cursor)
        return datetime.fromisoformat(value) if value is not None else None

    def _record_run(self, job: Job, at: datetime) -> None:
        with self.bus.uow_factory() as uow:
            uow.cursors.set(job.cursor, at.isoformat(), at)
            uow.commit()

    # -- the loop -------------------------------------------------------------------------------

    def run(self, stop_event: threading.Event | None = None) -> None:
        stop = stop_event or self._stop
        log.info("scheduler.started", catch_up_interval_s=self.jobs[0].interval_s,
                 sweep_interval_s=self.jobs[1].interval_s)
        try:
            while not stop.is_set() and not self._stop.is_set():
                try:
                    self.tick()
                except Exception as exc:  # e.g. the database went away while reading the schedule
                    log.warning("scheduler.tick_failed", error=type(exc).__name__, detail=str(exc)[:200])
                stop.wait(self.tick_s)
        finally:
            self.lock.release()
            self._leading = False
            log.info("scheduler.stopped")

    def start(self) -> "Scheduler":
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def _summary(result: object) -> object:
    if isinstance(result, dict):
        return {k: v for k, v in result.items() if not isinstance(v, (list, dict))}
    return result


# -- entry points -------------------------------------------------------------------------------


def run_scheduler() -> None:
    """`billing-sync scheduler`: run the periodic jobs until SIGINT/SIGTERM."""
    from ..bootstrap import bootstrap
    from ..config.settings import get_settings
    from ..handlers.account_pin import verify_account_if_reachable
    from .broker import make_broker
    from .shutdown import stop_on_signals

    settings = get_settings()
    stop = stop_on_signals(threading.Event(), settings.shutdown_grace_s)
    bus = bootstrap(settings)
    bus.call(verify_account_if_reachable)  # fail fast on another account; the jobs check again
    make_broker(settings)  # the workers' broker, which catch-up enqueues to
    Scheduler(bus).run(stop)
