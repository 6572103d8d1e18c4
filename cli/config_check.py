"""`config check`: the effective configuration, secrets masked, and whether it works."""
from __future__ import annotations

import sys

import click

from ..config.settings import get_settings
from .output import emit, json_option, table


@click.group("config")
def config_group() -> None:
    """The configuration."""


@config_group.command("check")
@json_option
def config_check() -> None:
    """Validate the settings, the catalog and connectivity (database, broker, event bus, Stripe
    account); print the effective configuration with secrets masked. Exit 2 on a configuration
    error, 3 on a key of another Stripe account than the pinned one, 1 when something is down."""
    from ..ops.config_check import config_document, connectivity
    from .errors import exit_code_of

    settings = get_settings()  # invalid settings never get here: one line, exit 2 (cli/errors.py)
    document = config_document(settings, connectivity(settings, exit_code_of))

    def human() -> None:
        table(document["configuration"], ["setting", "value", "source"])
        click.echo()
        table(document["checks"], ["state", "name", "detail"])

    emit(document, human)
    sys.exit(document["exit_code"])


COMMANDS = (config_group,)
