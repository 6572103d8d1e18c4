"""The `billing-sync` command: one sub-command per process role, plus operator tools.

Each sub-command imports its role lazily, so `billing-sync emulator` does not pay for Dramatiq
and `billing-sync db upgrade` does not pay for Starlette.
"""
from __future__ import annotations

import sys

import click

from pydantic import ValidationError

from .config.logging import configure_logging
from .config.settings import describe_settings_error, get_settings
from .errors import ConfigurationError, SafetyRefusal, TransientError


class _OneLineError(click.ClickException):
    """Printed as one line on stderr, with the exit code of its kind (2 configuration, 3 refusal)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"billing-sync: {self.format_message()}", err=True)


class _Main(click.Group):
    """Turns configuration errors and safety refusals, raised anywhere below, into one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            raise _OneLineError(f"configuration error: {describe_settings_error(exc)}", 2) from exc
        except ConfigurationError as exc:
            raise _OneLineError(f"configuration error: {exc}", exc.exit_code) from exc
        except SafetyRefusal as exc:
            raise _OneLineError(f"refused: {exc}", exc.exit_code) from exc
        except TransientError as exc:  # an outage at start-up: exit 1, so a supervisor retries
            raise _OneLineError(f"unavailable: {exc}", 1) from exc


@click.group(cls=_Main)
def main() -> None:
    """Keep a SaaS product and Stripe in two-way sync; publish entitlements."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


def _network_options(default_port: int):
    def decorate(fn):
        fn = click.option("--port", default=default_port, show_default=True, type=int)(fn)
        return click.option("--host", default="127.0.0.1", show_default=True)(fn)

    return decorate


def _metrics_options(fn):
    fn = click.option("--metrics-host", default=None,
                      help="Address for --metrics-port.  [default: BILLING_METRICS_HOST or 0.0.0.0]")(fn)
    return click.option("--metrics-port", default=None, type=int,
                        help="Serve Prometheus /metrics on this port.  [default: BILLING_METRICS_PORT or off]")(fn)


def _metrics_address(port: int | None, host: str | None) -> tuple[int | None, str]:
    """The options, else the settings: (port or None when off, host)."""
    settings = get_settings()
    return (port if port is not None else settings.metrics_port), (host or settings.metrics_host)


def _serve_metrics(port: int | None, host: str | None) -> None:
    """Start this process's /metrics server, if a port is set, before the role's loop."""
    port, host = _metrics_address(port, host)
    if port is None:
        return
    from .config.metrics_http import serve_this_process

    try:
        serve_this_process(port, host)
    except OSError as exc:
        raise click.ClickException(f"cannot serve metrics on {host}:{port}: {exc}") from exc


@main.command()
@_network_options(8080)
def up(host: str, port: int) -> None:
    """The whole fleet in one process (embedded defaults unless configured)."""
    from .fleet import run_up

    run_up(host=host, port=port)


@main.command()
@_network_options(0)
def demo(host: str, port: int) -> None:
    """Start `up` and play the scripted two-way scenario; exit 0 when every step was seen."""
    import os

    from .demo import run_demo

    if "BILLING_LOG_LEVEL" not in os.environ:  # the timeline is the demo's output; logs on request
        configure_logging("WARNING", get_settings().log_format)

    sys.exit(run_demo(host=host, port=port))


@main.command()
@_network_options(8080)
def ingress(host: str, port: int) -> None:
    """Webhook ingress and read API (ASGI on uvicorn)."""
    from .ingress.server import serve

    serve(host=host, port=port)


@main.command()
@click.option("--processes", default=1, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@_metrics_options
def worker(processes: int, threads: int, metrics_port: int | None, metrics_host: str | None) -> None:
    """Dramatiq workers that run the handlers."""
    from .workers.worker import run_worker

    metrics_port, metrics_host = _metrics_address(metrics_port, metrics_host)
    sys.exit(run_worker(processes=processes, threads=threads, metrics_port=metrics_port, metrics_host=metrics_host))


@main.command()
@_metrics_options
def bridge(metrics_port: int | None, metrics_host: str | None) -> None:
    """Consume product commands from billing.commands and hand them to the workers."""
    from .workers.bridge import run_bridge

    _serve_metrics(metrics_port, metrics_host)
    run_bridge()


@main.command()
@_metrics_options
def relay(metrics_port: int | None, metrics_host: str | None) -> None:
    """Publish outbox rows to billing.events."""
    from .workers.relay import run_relay

    _serve_metrics(metrics_port, metrics_host)
    run_relay()


@main.command()
@_metrics_options
def scheduler(metrics_port: int | None, metrics_host: str | None) -> None:
    """Periodic reconciliation sweep and missed-event catch-up."""
    from .workers.scheduler import run_scheduler

    _serve_metrics(metrics_port, metrics_host)
    run_scheduler()


@main.command()
@_network_options(12111)
@click.option("--webhook-url", default=None, help="Where to deliver webhooks (repeatable via the API too).")
@click.option("--webhook-secret", default="whsec_emulator", show_default=True)
@click.option("--account-id", default=None,
              help="The id GET /v1/account answers (acct_…); random per run by default.")
def emulator(host: str, port: int, webhook_url: str | None, webhook_secret: str, account_id: str | None) -> None:
    """The bundled Stripe emulator on its own."""
    from billing_sync_emulator.server import serve

    serve(host=host, port=port, webhook_url=webhook_url, webhook_secret=webhook_secret, account_id=account_id)


def _refuse_bad_tenant_id(tenant: str | None) -> None:
    """A `--tenant` that breaks the tenant-id rule is a configuration error (one line, exit 2);
    an empty one too, which would otherwise mean every tenant."""
    from .contract.ids import TENANT_ID_RULE, is_tenant_id

    if tenant is not None and not is_tenant_id(tenant):
        raise ConfigurationError(f"--tenant {tenant[:40]!r} refused: {TENANT_ID_RULE}")


@main.command()
@click.option("--tenant", default=None, help="Only this tenant; all of them by default.")
@click.option("--dry-run", is_flag=True, help="Report drift, change nothing.")
@click.option("--allow-mass-change", is_flag=True,
              help="Apply even when more than BILLING_SWEEP_MAX_CHANGE_RATIO of the tenants would change.")
def reconcile(tenant: str | None, dry_run: bool, allow_mass_change: bool) -> None:
    """Compare local state with Stripe and repair drift now."""
    from .ops.jobs import run_reconcile

    _refuse_bad_tenant_id(tenant)
    sys.exit(run_reconcile(tenant=tenant, dry_run=dry_run, allow_mass_change=allow_mass_change))


@main.group()
def inbox() -> None:
    """Received product commands that have no outcome yet."""


@inbox.command("repair")
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), default=None,
              help="Seconds since a command was last sent (default BILLING_COMMAND_REPAIR_AFTER_S).")
def inbox_repair(older_than: float | None) -> None:
    """Send commands with no outcome to the workers again (what the scheduler does every 30 s)."""
    from .ops.jobs import run_inbox_repair

    sys.exit(run_inbox_repair(older_than))


@main.group()
def dlq() -> None:
    """Dead-lettered messages: list, replay, purge."""


@dlq.command("list")
@click.option("--limit", default=50, show_default=True)
def dlq_list(limit: int) -> None:
    from .ops.dead_letters import list_dead_letters

    list_dead_letters(limit=limit)


@dlq.command("replay")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True)
def dlq_replay(ids: tuple[int, ...], replay_all: bool) -> None:
    from .ops.dead_letters import replay

    sys.exit(replay(ids=list(ids), replay_all=replay_all))


@dlq.command("purge")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "purge_all", is_flag=True)
def dlq_purge(ids: tuple[int, ...], purge_all: bool) -> None:
    from .ops.dead_letters import purge

    sys.exit(purge(ids=list(ids), purge_all=purge_all))


@main.group()
def catalog() -> None:
    """The plan catalog in Stripe."""


@catalog.command("sync")
def catalog_sync() -> None:
    """Create the catalog's products, lookup_key'd prices and meters in Stripe where missing."""
    from .bms.catalog_sync import ensure_catalog
    from .bootstrap import build_context

    from .handlers.account_pin import verify_account

    ctx = build_context()
    verify_account(ctx)
    for plan, price in ensure_catalog(ctx.bms, ctx.catalog).items():
        click.echo(f"{plan}: {price['id']} ({price.get('lookup_key')})")


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply migrations up to the newest."""
    from .models.migrate import upgrade as migrate

    migrate(get_settings().database_url)
    click.echo("database at head")


@main.group()
def account() -> None:
    """The Stripe account this database is pinned to."""


@account.command("show")
def account_show() -> None:
    """The pinned account and the account of BILLING_STRIPE_API_KEY."""
    from .bootstrap import build_context
    from .handlers.account_pin import pinned_account

    ctx = build_context()
    with ctx.uow() as uow:
        pinned = pinned_account(uow)
    current = ctx.bms.stripe_account_id()
    click.echo(f"pinned: {pinned or '(nothing yet; pinned on first contact)'}")
    click.echo(f"key's account: {current}")
    if pinned and pinned != current:
        sys.exit(3)


@account.command("repin")
@click.option("--from", "old", required=True, help="The account the database is pinned to now (acct_…).")
def account_repin(old: str) -> None:
    """Move this database to the key's Stripe account, on purpose."""
    from .bootstrap import build_context
    from .handlers.account_pin import repin

    click.echo(f"pinned to {repin(build_context(), old)} (was {old})")


@main.group()
def bus() -> None:
    """The event bus topology."""


@bus.command("declare")
def bus_declare() -> None:
    """Declare this deployment's exchanges, the bridge's queue and its binding (idempotent)."""
    from .config.bus import connect, declare_topology
    from .config.urls import redact

    settings = get_settings()
    if settings.event_bus_url.startswith("memory://"):
        click.echo("event bus is memory:// (inside `billing-sync up`, which declares it): nothing to declare")
        return
    with connect(settings.event_bus_url) as conn:
        try:
            conn.ensure_connection(max_retries=0)
        except Exception as exc:
            click.echo(f"billing-sync: event bus {redact(settings.event_bus_url)} unreachable: "
                       f"{type(exc).__name__}", err=True)
            sys.exit(1)
        for line in declare_topology(conn, settings.queue_prefix):
            click.echo(f"declared {line}")


@main.command()
def status() -> None:
    """Database, broker and Stripe reachability, queue depths, outbox lag, dead letters."""
    from .ops.status import print_status

    sys.exit(print_status())
