"""`billing-sync reconcile` (`--usage`: metering) and `billing-sync inbox repair`: a scheduler job run now, from the
command line, with its output for scripts (one JSON line) and, for reconcile, for people (a
short table). The jobs themselves are in `handlers/`; the periodic loop in `workers/scheduler.py`.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import TextIO

from ..errors import BillingSyncError
from ..handlers.messagebus import Bus
from ..handlers.messages import InboxRepairDue, ReconcileRequested, SweepDue
from ..handlers.meter_reconcile import reconcile_usage


def run_inbox_repair(older_than_s: float | None = None, *, bus: Bus | None = None, send_command=None,
                     out: TextIO | None = None) -> int:
    """`billing-sync inbox repair [--older-than S]`: the scheduler's repair-commands job, now.

    Prints the counts as one JSON line; exits 1 when the database or the broker failed."""
    out = out or sys.stdout
    if bus is None:
        from ..bootstrap import bootstrap
        from ..config.settings import get_settings
        from ..workers.broker import make_broker

        settings = get_settings()
        bus = bootstrap(settings)
        make_broker(settings)  # the workers' broker, which the commands are sent to
    if send_command is None:
        from ..workers.broker import send_command
    older = bus.settings.command_repair_after_s if older_than_s is None else older_than_s
    try:
        report = bus.replace(send_command=send_command).handle(InboxRepairDue(older_than_s=older))
    except Exception as exc:  # the database or the broker is down: say so, exit 1
        print(json.dumps({"error": type(exc).__name__, "detail": str(exc)[:300]}), file=out)
        return 1
    print(json.dumps(report, sort_keys=True), file=out)
    return 0


def run_reconcile(tenant: str | None = None, dry_run: bool = False, *, allow_mass_change: bool = False,
                  bus: Bus | None = None, out: TextIO | None = None) -> int:
    """`billing-sync reconcile [--tenant T] [--dry-run] [--allow-mass-change]`: one tenant or a
    full sweep, now.

    Prints the report as one JSON line (for scripts) followed by a short table (for people).
    Exits 0 when it ran cleanly, 1 when Stripe or the database failed or some tenants could
    not be reconciled — a backfill that hit errors must not look like a success. Without `bus`
    (the command line) the Stripe account is checked against the pin first, dry run or not;
    a refusal (wrong account, a mass change) raises `SafetyRefusal` (exit 3).
    """
    out = out or sys.stdout
    if bus is None:
        from ..bootstrap import bootstrap
        from ..config.settings import get_settings
        from ..handlers.account_pin import verify_account

        bus = bootstrap(get_settings())
        bus.call(verify_account, pin=not dry_run)  # a dry run writes nothing, not even the pin
    try:
        if tenant:
            report = bus.handle(ReconcileRequested(tenant, cause="reconcile", dry_run=dry_run))
        else:
            report = bus.handle(SweepDue(dry_run=dry_run, allow_mass_change=allow_mass_change))
    except BillingSyncError as exc:
        print(json.dumps({"error": type(exc).__name__, "reason": exc.reason, "detail": str(exc)[:300]}), file=out)
        return 1
    print(json.dumps(report, default=str, sort_keys=True), file=out)
    _print_table(report, out)
    if tenant and report.get("found") is False:
        print(f"tenant {tenant!r}: no local row and no Stripe customer", file=out)
        return 1
    return 1 if report.get("errors") else 0


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


def _print_table(report: dict, out: TextIO) -> None:
    width = max((len(str(key)) for key in report), default=0)
    for key in sorted(report):
        value = report[key]
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        print(f"  {key:<{width}}  {value}", file=out)
