"""The `billing-sync` command: one sub-command per process role, plus operator tools.

One module per command group: `roles` (the processes: `up`, `worker`, `bridge`, …), `jobs`
(`reconcile`, `catch-up`, `inbox`: a scheduler job run now), `dlq`, `status`, `config_check`
(`config check`), `catalog`, `db`, `account`, `bus`. Each module lists its commands in `COMMANDS`
and imports nothing from this one; a new group is a new module added to `GROUPS` below
(tests/unit/test_cli_layout.py fails on a module or command left out). Each sub-command imports its role lazily, so
`billing-sync emulator` does not pay for Dramatiq and `billing-sync db upgrade` does not pay for
Starlette.
"""
from __future__ import annotations

import click

from ..config.logging import configure_logging
from ..config.settings import get_settings
from . import account, bus, catalog, config_check, db, dlq, events, jobs, roles, send, status, tenant
from .errors import OneLineErrors
from .output import json_option

GROUPS = (roles, jobs, dlq, status, config_check, catalog, db, account, bus, tenant, events, send)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="billing-sync", message="%(prog)s %(version)s")
@json_option
def main() -> None:
    """Keep a SaaS product and Stripe in two-way sync; publish entitlements."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


for group in GROUPS:
    for command in group.COMMANDS:
        main.add_command(command)
