"""`events replay evt_…`: one Stripe event, by id from Stripe, through the normal pipeline (`ops/events.py`)."""
from __future__ import annotations

import re
import sys

import click

from ..errors import ConfigurationError
from .output import emit, json_option

EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,251}")  # contract/stripe_event.py's EventId


@click.group()
def events() -> None:
    """Stripe events."""


@events.command("replay")
@click.argument("event_id")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to wait for the workers' outcome.")
@json_option
def events_replay(event_id: str, wait_s: float) -> None:
    """Fetch one Stripe event by id and hand it to the workers as a webhook; print what they made of it."""
    from ..ops.events import replay

    if not EVENT_ID.fullmatch(event_id):
        raise ConfigurationError(f"{event_id[:40]!r} is not a Stripe event id (evt_…)")
    document, code = replay(event_id, wait_s=wait_s)
    emit(document)
    sys.exit(code)


COMMANDS = (events,)
