"""`bus declare`: the event bus topology."""
from __future__ import annotations

import click

from ..config.settings import get_settings
from .output import emit, json_option


@click.group()
def bus() -> None:
    """The event bus topology."""


@bus.command("declare")
@json_option
def bus_declare() -> None:
    """Declare this deployment's exchanges, the bridge's queue and its binding (idempotent)."""
    from ..config.bus import connect, declare_topology

    settings = get_settings()
    if settings.event_bus_url.startswith("memory://"):
        note = "event bus is memory:// (inside `billing-sync up`, which declares it): nothing to declare"
        emit({"declared": [], "note": note}, lambda: click.echo(note))
        return
    with connect(settings.event_bus_url) as conn:
        conn.ensure_connection(max_retries=0)  # unreachable: one line, exit 1 (cli/errors.py)
        declared = list(declare_topology(conn, settings.queue_prefix))
    emit({"declared": declared}, lambda: click.echo("\n".join(f"declared {line}" for line in declared)))


COMMANDS = (bus,)
