"""`billing-sync reconcile` (`--usage`: metering), `catch-up` and `inbox repair`: a scheduler job
run now, from the command line. Each `*_now` returns (exit code, report) for the CLI to print
(cli/jobs.py: a table or `--json`); `run_*` print the report as one JSON line, for callers
without the CLI. The jobs themselves are in `handlers/`; the periodic loop in `workers/scheduler.py`.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import Any, TextIO

from ..errors import BillingSyncError, ConfigurationError
from ..handlers.dependencies import Progress, no_progress
from ..handlers.messagebus import Bus
from ..handlers.messages import CatchUpDue, InboxRepairDue, ReconcileRequested, SweepDue
from ..handlers.meter_reconcile import reconcile_usage

Outcome = tuple[int, dict[str, Any]]


def _failure(exc: Exception) -> dict[str, Any]:
    return {"error": type(exc).__name__, "reason": getattr(exc, "reason", None), "detail": str(exc)[:300]}


def _workers_bus(bus: Bus | None, job: str, *, refuse_embedded: bool = True) -> Bus:
    """The environment's bus, with the workers' broker made current (what the job sends to)."""
    if bus is not None:
        return bus
    from ..bootstrap import bootstrap
    from ..config.settings import get_settings
    from ..workers.broker import make_broker

    settings = get_settings()
    if settings.embedded_broker and refuse_embedded:
        raise ConfigurationError(f"BILLING_BROKER_URL=embedded: {job} hands its messages to the workers' broker, "
                                 "which lives only inside a running `billing-sync up` (and does this job itself)")
    bus = bootstrap(settings)
    make_broker(settings)
    return bus


def inbox_repair_now(older_than_s: float | None = None, *, bus: Bus | None = None, send_command=None) -> Outcome:
    """The scheduler's repair-commands job, now; exit code 1 when the database or the broker failed."""
    bus = _workers_bus(bus, "inbox repair", refuse_embedded=False)
    if send_command is None:
        from ..workers.broker import send_command
    older = bus.settings.command_repair_after_s if older_than_s is None else older_than_s
    try:
        return 0, bus.replace(send_command=send_command).handle(InboxRepairDue(older_than_s=older))
    except Exception as exc:  # the database or the broker is down: say so, exit 1
        return 1, _failure(exc)


def run_inbox_repair(older_than_s: float | None = None, *, bus: Bus | None = None, send_command=None,
                     out: TextIO | None = None) -> int:
    """`inbox_repair_now`, its report printed as one JSON line."""
    code, report = inbox_repair_now(older_than_s, bus=bus, send_command=send_command)
    print(json.dumps(report, sort_keys=True), file=out or sys.stdout)
    return code


def catch_up_now(*, bus: Bus | None = None, enqueue=None, progress: Progress = no_progress) -> Outcome:
    """The scheduler's catch-up job, now: the Stripe events since the newest one seen that are not
    in the ledger go to the workers. Exit code 1 when Stripe, the database or the broker failed."""
    bus = _workers_bus(bus, "catch-up")
    if enqueue is None:
        from ..workers.broker import enqueue_stripe_event as enqueue
    try:
        enqueued = bus.replace(enqueue_stripe_event=enqueue, progress=progress).handle(CatchUpDue())
    except Exception as exc:
        return 1, _failure(exc)
    return 0, {"enqueued": enqueued}


def reconcile_now(tenant: str | None = None, dry_run: bool = False, *, allow_mass_change: bool = False,
                  bus: Bus | None = None, progress: Progress = no_progress) -> Outcome:
    """One tenant or a full sweep, now.

    Exit code 0 when it ran cleanly, 1 when Stripe or the database failed or some tenants could
    not be reconciled — a backfill that hit errors must not look like a success. Without `bus`
    (the command line) the Stripe account is checked against the pin first, dry run or not;
    a refusal (wrong account, a mass change) raises `SafetyRefusal` (exit 3).
    """
    if bus is None:
        from ..bootstrap import bootstrap
        from ..config.settings import get_settings
        from ..handlers.account_pin import verify_account

        bus = bootstrap(get_settings())
        bus.call(verify_account, pin=not dry_run)  # a dry run writes nothing, not even the pin
    bus = bus.replace(progress=progress)
    try:
        if tenant:
            report = bus.handle(ReconcileRequested(tenant, cause="reconcile", dry_run=dry_run))
        else:
            report = bus.handle(SweepDue(dry_run=dry_run, allow_mass_change=allow_mass_change))
    except BillingSyncError as exc:
        return 1, _failure(exc)
    if tenant and report.get("found") is False:
        return 1, {**report, "note": f"tenant {tenant!r}: no local row and no Stripe customer"}
    return (1 if report.get("errors") else 0), report


def run_reconcile(tenant: str | None = None, dry_run: bool = False, *, allow_mass_change: bool = False,
                  bus: Bus | None = None, out: TextIO | None = None) -> int:
    """`reconcile_now`, its report printed as one JSON line."""
    code, report = reconcile_now(tenant, dry_run, allow_mass_change=allow_mass_change, bus=bus)
    print(json.dumps(report, default=str, sort_keys=True), file=out or sys.stdout)
    return code


def run_usage_reconcile(since: datetime | None = None, until: datetime | None = None, *, tenant: str | None = None,
                        repair: bool = False, bus: Bus | None = None, out: TextIO | None = None) -> int:
    """`billing-sync reconcile --usage [--since --until] [--tenant T] [--repair]`: local usage
    against Stripe's meter event summaries (handlers/meter_reconcile.py), by default over the
    last 24 hours up to the last closed window.

    Prints the report as one JSON line, then one line per drifted tenant and meter. Exits 0
    when nothing drifted (or every drift was queued for repair), 1 otherwise."""
    out = out or sys.stdout
    if bus is None:
        from ..bootstrap import bootstrap
        from ..config.settings import get_settings
        from ..handlers.account_pin import verify_account

        bus = bootstrap(get_settings())
        bus.call(verify_account, pin=not repair)
    moment = bus.dependencies["now"]()
    until = until or moment - timedelta(seconds=bus.settings.meter_settle_s + 60)
    since = since or until - timedelta(days=1)
    try:
        report = bus.call(reconcile_usage, since, until, tenant_id=tenant, repair=repair)
    except BillingSyncError as exc:
        print(json.dumps({"error": type(exc).__name__, "reason": exc.reason, "detail": str(exc)[:300]}), file=out)
        return 1
    print(json.dumps(report, default=str, sort_keys=True), file=out)
    for row in report["drifted"]:
        print(f"  {row['tenant_id']}  {row['meter']}  local {row['local']}  stripe {row['stripe']:g}  "
              f"in flight {row['in_flight']}  refused {row['refused']}  drift {row['drift']}", file=out)
    unrepaired = len(report["drifted"]) - report["repairs_queued"]
    return 1 if report["errors"] or unrepaired else 0

