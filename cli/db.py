"""`db upgrade | current | history | wait`: the database schema (Alembic's revisions)."""
from __future__ import annotations

import time

import click

from ..config.settings import get_settings
from .output import emit, json_option, table


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
@json_option
def upgrade() -> None:
    """Apply migrations up to the newest."""
    from ..models.migrate import schema_revisions
    from ..models.migrate import upgrade as migrate

    url = get_settings().database_url
    migrate(url)
    revisions = schema_revisions(url)
    emit({"current": revisions["current"], "head": revisions["head"], "at_head": True},
         lambda: click.echo(f"database at head ({revisions['head']})"))


@db.command()
@json_option
def current() -> None:
    """The database's revision and the code's newest (exit 1 when they differ)."""
    from ..models.migrate import schema_revisions

    revisions = schema_revisions(get_settings().database_url)
    current, head = revisions["current"], revisions["head"]

    def human() -> None:
        if current is None:
            click.echo(f"none: the database has no schema yet (head is {head}; run `billing-sync db upgrade`)")
        elif current == head:
            click.echo(f"{current} (head)")
        else:
            click.echo(f"{current}; head is {head}: run `billing-sync db upgrade`")

    emit({**revisions, "at_head": current == head}, human)
    if current != head:
        raise SystemExit(1)


@db.command()
@json_option
def history() -> None:
    """Every migration, newest first, with the one the database is at marked."""
    from ..models.migrate import migration_history

    rows = migration_history(get_settings().database_url)
    emit({"migrations": rows}, lambda: table(
        [{**row, "mark": "current" if row["current"] else ""} for row in rows],
        ["revision", "down_revision", "mark", "description"]))


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
