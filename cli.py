"""The `billing-sync` command: one sub-command per process role, plus operator tools.

Each sub-command imports its role lazily, so `billing-sync emulator` does not pay for Dramatiq
and `billing-sync db upgrade` does not pay for Starlette.
"""
from __future__ import annotations

import sys

import click

from .config.logging import configure_logging
from .config.settings import get_settings


@click.group()
def main() -> None:
    """Keep a SaaS product and Stripe in two-way sync; publish entitlements."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


def _network_options(default_port: int):
    def decorate(fn):
        fn = click.option("--port", default=default_port, show_default=True, type=int)(fn)
        return click.option("--host", default="127.0.0.1", show_default=True)(fn)

    return decorate


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
def worker(processes: int, threads: int) -> None:
    """Dramatiq workers that run the handlers."""
    from .workers.worker import run_worker

    sys.exit(run_worker(processes=processes, threads=threads))


@main.command()
def bridge() -> None:
    """Consume product commands from billing.commands and hand them to the workers."""
    from .workers.bridge import run_bridge

    run_bridge()


@main.command()
def relay() -> None:
    """Publish outbox rows to billing.events."""
    from .workers.relay import run_relay

    run_relay()


@main.command()
def scheduler() -> None:
    """Periodic reconciliation sweep and missed-event catch-up."""
    from .workers.scheduler import run_scheduler

    run_scheduler()


@main.command()
@_network_options(12111)
@click.option("--webhook-url", default=None, help="Where to deliver webhooks (repeatable via the API too).")
@click.option("--webhook-secret", default="whsec_emulator", show_default=True)
def emulator(host: str, port: int, webhook_url: str | None, webhook_secret: str) -> None:
    """The bundled Stripe emulator on its own."""
    from .bms.emulator.server import serve

    serve(host=host, port=port, webhook_url=webhook_url, webhook_secret=webhook_secret)


@main.command()
@click.option("--tenant", default=None, help="Only this tenant; all of them by default.")
@click.option("--dry-run", is_flag=True, help="Report drift, change nothing.")
def reconcile(tenant: str | None, dry_run: bool) -> None:
    """Compare local state with Stripe and repair drift now."""
    from .workers.scheduler import run_reconcile

    sys.exit(run_reconcile(tenant=tenant, dry_run=dry_run))


@main.group()
def dlq() -> None:
    """Dead-lettered messages: list, replay, purge."""


@dlq.command("list")
@click.option("--limit", default=50, show_default=True)
def dlq_list(limit: int) -> None:
    from .workers.dead_letters import list_dead_letters

    list_dead_letters(limit=limit)


@dlq.command("replay")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True)
def dlq_replay(ids: tuple[int, ...], replay_all: bool) -> None:
    from .workers.dead_letters import replay

    sys.exit(replay(ids=list(ids), replay_all=replay_all))


@dlq.command("purge")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "purge_all", is_flag=True)
def dlq_purge(ids: tuple[int, ...], purge_all: bool) -> None:
    from .workers.dead_letters import purge

    sys.exit(purge(ids=list(ids), purge_all=purge_all))


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply migrations up to the newest."""
    from .models.migrate import upgrade as migrate

    migrate(get_settings().database_url)
    click.echo("database at head")


@main.command()
def status() -> None:
    """Database, broker and Stripe reachability, queue depths, outbox lag, dead letters."""
    from .workers.status import print_status

    sys.exit(print_status())
