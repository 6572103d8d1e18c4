"""`status`: is every dependency reachable, and is work flowing (`ops/status.py`)."""
from __future__ import annotations

import sys

import click


@click.command()
def status() -> None:
    """Database, broker and Stripe reachability, queue depths, outbox lag, dead letters."""
    from ..ops.status import print_status

    sys.exit(print_status())


COMMANDS = (status,)
