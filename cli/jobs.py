"""`reconcile`, `catch-up` and `inbox repair`: a scheduler job run now, from the command line
(`ops/jobs.py`), with a progress bar on a terminal and `--json` for scripts."""
from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from ..errors import ConfigurationError
from .output import emit, fields, json_option, progress_stages


def refuse_bad_tenant_id(tenant: str | None) -> None:
    """A `--tenant` that breaks the tenant-id rule is a configuration error (one line, exit 2);
    an empty one too, which would otherwise mean every tenant."""
    from ..contract.ids import TENANT_ID_RULE, is_tenant_id

    if tenant is not None and not is_tenant_id(tenant):
        raise ConfigurationError(f"--tenant {tenant[:40]!r} refused: {TENANT_ID_RULE}")


@click.command()
@click.option("--tenant", default=None, help="Only this tenant; all of them by default.")
@click.option("--dry-run", is_flag=True, help="Report drift, change nothing.")
@click.option("--allow-mass-change", is_flag=True,
              help="Apply even when more than BILLING_SWEEP_MAX_CHANGE_RATIO of the tenants would change.")
@click.option("--usage", is_flag=True, help="Compare local usage with Stripe's meter event summaries instead.")
@click.option("--since", type=click.DateTime(), default=None, help="--usage: from (UTC; default 24 h before --until).")
@click.option("--until", type=click.DateTime(), default=None, help="--usage: to (UTC; default the last closed minute).")
@click.option("--repair", is_flag=True, help="--usage: send a correcting meter event for each difference.")
@json_option
def reconcile(tenant: str | None, dry_run: bool, allow_mass_change: bool, usage: bool, since: datetime | None,
              until: datetime | None, repair: bool) -> None:
    """Compare local state with Stripe and repair drift now (exit 1 if some tenants failed)."""
    from ..ops.jobs import reconcile_now, run_usage_reconcile

    refuse_bad_tenant_id(tenant)
    if not usage and (since or until or repair):
        raise ConfigurationError("--since, --until and --repair go with --usage")
    if usage:
        if dry_run or allow_mass_change:
            raise ConfigurationError("--usage reports by default (--repair corrects); --dry-run and "
                                     "--allow-mass-change are the sweep's")
        sys.exit(run_usage_reconcile(_utc(since), _utc(until), tenant=tenant, repair=repair))
    with progress_stages() as progress:
        code, report = reconcile_now(tenant=tenant, dry_run=dry_run, allow_mass_change=allow_mass_change,
                                     progress=progress)
    emit(report, lambda: fields(report))
    sys.exit(code)


@click.command("catch-up")
@json_option
def catch_up() -> None:
    """Enqueue the Stripe events since the newest one seen that were never processed (missed webhooks)."""
    from ..ops.jobs import catch_up_now

    with progress_stages() as progress:
        code, report = catch_up_now(progress=progress)
    emit(report, lambda: fields(report))
    sys.exit(code)


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@click.group()
def inbox() -> None:
    """Received product commands that have no outcome yet."""


@inbox.command("repair")
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), default=None,
              help="Seconds since a command was last sent (default BILLING_COMMAND_REPAIR_AFTER_S).")
@json_option
def inbox_repair(older_than: float | None) -> None:
    """Send commands with no outcome to the workers again (what the scheduler does every 30 s)."""
    from ..ops.jobs import inbox_repair_now

    code, report = inbox_repair_now(older_than)
    emit(report, lambda: fields(report))
    sys.exit(code)


COMMANDS = (reconcile, catch_up, inbox)
