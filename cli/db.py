"""`db upgrade`, `db wait`: the database schema."""
from __future__ import annotations

import time

import click

from ..config.settings import get_settings


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply migrations up to the newest."""
    from ..models.migrate import upgrade as migrate

    migrate(get_settings().database_url)
    click.echo("database at head")


@db.command()
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(min=0),
              help="Give up after this many seconds (exit 1).")
def wait(timeout: float) -> None:
    """Wait until the schema is at this version's head (another process runs `db upgrade`).

    Exit 0 once it is; 1 after --timeout, the database unreachable or behind all along: what a
    Kubernetes init container runs before a role starts (deploy/kubernetes)."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..models.migrate import at_head

    url = get_settings().database_url
    deadline = time.monotonic() + timeout
    while True:
        try:
            if at_head(url):
                click.echo("database at head")
                return
            state = "behind head"
        except SQLAlchemyError as exc:
            state = f"unreachable ({type(exc).__name__})"
        if time.monotonic() >= deadline:
            raise click.ClickException(f"database still {state} after {timeout:g} s")
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))


COMMANDS = (db,)
