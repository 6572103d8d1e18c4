"""`status`: is every dependency reachable, and is work flowing (`ops/status.py`)."""
from __future__ import annotations

import sys

import click

from .output import json_option, wants_json


@click.command()
@json_option
def status() -> None:
    """Database, broker and Stripe reachability, queue depths, outbox lag, dead letters."""
    from ..ops.status import print_status

    sys.exit(print_status(as_json=wants_json()))


COMMANDS = (status,)
