"""`db upgrade`: the database schema."""
from __future__ import annotations

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


COMMANDS = (db,)
