"""`bus declare`: the event bus topology."""
from __future__ import annotations

import sys

import click

from ..config.settings import get_settings


@click.group()
def bus() -> None:
    """The event bus topology."""


@bus.command("declare")
def bus_declare() -> None:
    """Declare this deployment's exchanges, the bridge's queue and its binding (idempotent)."""
    from ..config.bus import connect, declare_topology
    from ..config.urls import redact

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


COMMANDS = (bus,)
