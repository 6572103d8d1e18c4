"""The process roles: `up` (the whole fleet), `demo`, and each role on its own (`ingress`,
`worker`, `bridge`, `relay`, `scheduler`, `emulator`). Each only translates its options and
starts the role's loop."""
from __future__ import annotations

import sys

import click

from ..config.logging import configure_logging
from ..config.settings import get_settings
from .options import metrics_address, metrics_options, network_options, serve_metrics


def warn_at_startup(role: str) -> None:
    """What an operator must know about this role's configuration, once (ops/startup_warnings.py)."""
    from ..ops.startup_warnings import warn_at_startup as warn

    warn(role, get_settings())


@click.command()
@network_options(8080)
def up(host: str, port: int) -> None:
    """The whole fleet in one process (embedded defaults unless configured)."""
    from ..fleet import run_up

    warn_at_startup("up")

    run_up(host=host, port=port)


@click.command()
@network_options(0)
def demo(host: str, port: int) -> None:
    """Start `up` and play the scripted two-way scenario; exit 0 when every step was seen."""
    import os

    from ..demo import run_demo

    if "BILLING_LOG_LEVEL" not in os.environ:  # the timeline is the demo's output; logs on request
        configure_logging("WARNING", get_settings().log_format)

    sys.exit(run_demo(host=host, port=port))


@click.command()
@network_options(8080)
def ingress(host: str, port: int) -> None:
    """Webhook ingress and read API (ASGI on uvicorn)."""
    from ..ingress.server import serve

    warn_at_startup("ingress")

    serve(host=host, port=port)


@click.command()
@click.option("--processes", default=1, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@metrics_options
def worker(processes: int, threads: int, metrics_port: int | None, metrics_host: str | None) -> None:
    """Dramatiq workers that run the handlers."""
    from ..workers.worker import run_worker

    warn_at_startup("worker")

    metrics_port, metrics_host = metrics_address(metrics_port, metrics_host)
    sys.exit(run_worker(processes=processes, threads=threads, metrics_port=metrics_port, metrics_host=metrics_host))


@click.command()
@metrics_options
def bridge(metrics_port: int | None, metrics_host: str | None) -> None:
    """Consume product commands from billing.commands and hand them to the workers."""
    from ..workers.bridge import run_bridge

    warn_at_startup("bridge")

    serve_metrics(metrics_port, metrics_host)
    run_bridge()


@click.command()
@metrics_options
def relay(metrics_port: int | None, metrics_host: str | None) -> None:
    """Publish outbox rows to billing.events."""
    from ..workers.relay import run_relay

    warn_at_startup("relay")

    serve_metrics(metrics_port, metrics_host)
    run_relay()


@click.command()
@metrics_options
def scheduler(metrics_port: int | None, metrics_host: str | None) -> None:
    """Periodic reconciliation sweep and missed-event catch-up."""
    from ..workers.scheduler import run_scheduler

    warn_at_startup("scheduler")

    serve_metrics(metrics_port, metrics_host)
    run_scheduler()


@click.command()
@network_options(12111)
@click.option("--webhook-url", default=None, help="Where to deliver webhooks (repeatable via the API too).")
@click.option("--webhook-secret", default="whsec_emulator", show_default=True)
@click.option("--account-id", default=None,
              help="The id GET /v1/account answers (acct_…); random per run by default.")
def emulator(host: str, port: int, webhook_url: str | None, webhook_secret: str, account_id: str | None) -> None:
    """The bundled Stripe emulator on its own."""
    from billing_sync_emulator.server import serve

    serve(host=host, port=port, webhook_url=webhook_url, webhook_secret=webhook_secret, account_id=account_id)


COMMANDS = (up, demo, ingress, worker, bridge, relay, scheduler, emulator)
